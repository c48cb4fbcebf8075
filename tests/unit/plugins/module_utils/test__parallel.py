"""Writes side by side: results in item order, the first failure in item order, nothing new after it."""

import threading
import time

from ansible_collections.jitaccess.azure.plugins.module_utils._parallel import side_by_side


class Refused(Exception):
    pass


def test_batch_writes_run_side_by_side_and_come_back_in_plan_order():
    together = threading.Barrier(4, timeout=30)  # breaks unless 4 run at once
    plans = [("p%d" % index, [], []) for index in range(8)]

    def attempt(key, desired, removed):
        if key in ("p0", "p1", "p2", "p3"):
            together.wait()
        return {"key": key}

    outcomes, error = side_by_side(plans, attempt, 4)
    assert error is None and [outcome["key"] for outcome in outcomes] == ["p%d" % index for index in range(8)]


def test_a_batch_write_error_is_the_first_in_plan_order_and_stops_new_writes():
    release = threading.Event()
    started = []
    plans = [("p%d" % index, [], []) for index in range(6)]

    def attempt(key, desired, removed):
        started.append(key)
        if key == "p1":
            raise Refused("write JIT policy p1")
        if key == "p0":
            assert release.wait(30)  # still in flight when p1 fails
        return {"key": key}

    def unblock():
        deadline = time.monotonic() + 30
        while "p1" not in started and time.monotonic() < deadline:
            time.sleep(0.01)  # polling for the condition, bounded by the deadline
        release.set()

    helper = threading.Thread(target=unblock)
    helper.start()
    outcomes, error = side_by_side(plans, attempt, 2)
    helper.join()
    index, exc = error[0], error[1]
    assert index == 1 and isinstance(exc, Refused) and str(exc) == "write JIT policy p1"
    assert outcomes[0] == {"key": "p0"} and outcomes[1] is None  # the write in flight finished and is reported
    assert outcomes[2:] == [None] * 4 and sorted(started) == ["p0", "p1"]  # nothing new started after the failure


def test_each_result_is_handed_over_in_the_calling_thread_as_it_comes():
    caller = threading.current_thread()
    handed = []
    second_done = threading.Event()

    def work(key):
        if key == "slow":
            assert second_done.wait(30)  # "fast" finishes first
        return key.upper()

    def on_result(index, result):
        assert threading.current_thread() is caller
        handed.append((index, result))
        second_done.set()

    results, error = side_by_side([("slow",), ("fast",)], work, 2, on_result=on_result)
    assert error is None and results == ["SLOW", "FAST"] and handed == [(1, "FAST"), (0, "SLOW")]

"""Writes side by side: results in item order, the first failure in item order, nothing new after it."""

import threading

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


def test_a_write_in_flight_when_another_fails_finishes_and_is_reported():
    failing = threading.Event()
    plans = [("p0", [], []), ("p1", [], [])]

    def attempt(key, desired, removed):
        if key == "p1":
            failing.set()
            raise Refused("write JIT policy p1")
        assert failing.wait(30)  # p0 is still in flight when p1 fails
        return {"key": key}

    outcomes, error = side_by_side(plans, attempt, 2)
    index, exc = error[0], error[1]
    assert index == 1 and isinstance(exc, Refused) and str(exc) == "write JIT policy p1"
    assert outcomes == [{"key": "p0"}, None]


def test_nothing_starts_after_a_failure_and_the_first_failure_in_plan_order_is_reported():
    started = []
    plans = [("p%d" % index, [], []) for index in range(6)]

    def attempt(key, desired, removed):
        started.append(key)
        if key == "p1":
            raise Refused("write JIT policy p1")
        return {"key": key}

    outcomes, error = side_by_side(plans, attempt, 1)
    assert error[0] == 1 and outcomes == [{"key": "p0"}, None, None, None, None, None]
    assert started == ["p0", "p1"]


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

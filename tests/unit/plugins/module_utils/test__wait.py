"""_wait: the backoff between polling rounds and the one waiter, driven by a fake clock."""

import pytest

from ansible_collections.jitaccess.azure.plugins.module_utils import _wait


class FakeTime:
    """A clock that moves only when slept on; ``events`` logs every check and sleep in order."""

    def __init__(self):
        self.now = 1000.0
        self.events = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.events.append(("sleep", seconds))
        self.now += seconds

    def checker(self, answers):
        """A ``check`` returning ``answers`` in turn (then False)."""
        answers = iter(answers)

        def check():
            self.events.append(("check", self.now))
            return next(answers, False)

        return check

    @property
    def sleeps(self):
        return [event[1] for event in self.events if event[0] == "sleep"]

    @property
    def checks(self):
        return [event[1] for event in self.events if event[0] == "check"]


def test_backoff_grows_to_a_cap():
    delays = _wait.backoff_delays()
    values = [next(delays) for dummy in range(14)]
    assert values[:4] == [0.5, 0.5, 0.5, 0.75]
    assert values == sorted(values)
    assert values[-1] == 3.0
    # a change applied after 15 s (armsim's azure profile) is seen within 2 s of it, and one
    # applied at any time within the cap
    delays, total = _wait.backoff_delays(), 0
    while total < 15:
        total += next(delays)
    assert total - 15 < 2
    for applied in range(1, 120):
        delays, total = _wait.backoff_delays(), 0
        while total < applied:
            total += next(delays)
        assert total - applied <= 3.0
    # 300 s of waiting is a bounded number of rounds (reads per NSG): under one round per 2.5 s
    delays, total, rounds = _wait.backoff_delays(), 0, 0
    while total < 300:
        total += next(delays)
        rounds += 1
    assert rounds < 300 / 2.5


def test_wait_until_succeeds_on_the_first_check_without_sleeping():
    fake = FakeTime()
    assert _wait.wait_until(fake.checker([True]), 60, sleep=fake.sleep, clock=fake.clock) is True
    assert fake.events == [("check", 1000.0)]


@pytest.mark.parametrize("failures", [1, 3, 6])
def test_wait_until_succeeds_after_rounds_spaced_by_the_backoff(failures):
    fake = FakeTime()
    check = fake.checker([False] * failures + [True])
    assert _wait.wait_until(check, 60, sleep=fake.sleep, clock=fake.clock) is True
    expected = _wait.backoff_delays()
    assert fake.sleeps == [next(expected) for dummy in range(failures)]
    assert len(fake.checks) == failures + 1
    assert [kind for kind, _value in fake.events] == ["check"] + ["sleep", "check"] * failures


def test_wait_until_uses_the_given_delays():
    fake = FakeTime()
    assert _wait.wait_until(fake.checker([False, False, True]), 60, sleep=fake.sleep, clock=fake.clock, delays=[2, 7, 100]) is True
    assert fake.sleeps == [2, 7]


def test_wait_until_times_out_without_sleeping_past_the_deadline():
    fake = FakeTime()
    deadline = fake.now + 10
    assert _wait.wait_until(fake.checker([]), 10, sleep=fake.sleep, clock=fake.clock, delays=iter(lambda: 4, None)) is False
    assert fake.sleeps == [4, 4, 2]  # the last sleep is cut to what is left
    assert fake.now == deadline
    assert fake.checks == [1000.0, 1004.0, 1008.0, 1010.0]  # a last look at the deadline, then give up


def test_wait_until_overshoots_the_deadline_by_at_most_a_tenth_of_a_second():
    fake = FakeTime()
    deadline = fake.now + 4.0625
    assert _wait.wait_until(fake.checker([]), 4.0625, sleep=fake.sleep, clock=fake.clock, delays=iter(lambda: 4, None)) is False
    assert fake.sleeps == [4, 0.1]  # 0.0625 s left: one short last sleep, not a spin
    assert 0 < fake.now - deadline <= 0.1 + 1e-9


@pytest.mark.parametrize("timeout", [0, -5])
def test_wait_until_without_time_checks_once_and_never_sleeps(timeout):
    fake = FakeTime()
    assert _wait.wait_until(fake.checker([]), timeout, sleep=fake.sleep, clock=fake.clock) is False
    assert fake.events == [("check", 1000.0)]


def test_wait_until_check_first_false_sleeps_before_the_first_check():
    fake = FakeTime()
    assert _wait.wait_until(fake.checker([True]), 60, sleep=fake.sleep, clock=fake.clock, check_first=False) is True
    assert fake.events == [("sleep", 0.5), ("check", 1000.5)]
    # with no time left it does not look at all
    fake = FakeTime()
    assert _wait.wait_until(fake.checker([True]), 0, sleep=fake.sleep, clock=fake.clock, check_first=False) is False
    assert fake.events == []


def test_rounds_start_a_delay_apart_whatever_a_round_costs():
    """A round that takes time (reading NSGs on a large fleet) is taken off the sleep after it: the
    rounds still start every ``delay`` seconds, and never closer than a quarter of it."""
    fake = FakeTime()
    costs = iter([0.3, 0.3, 5.0, 0.0])

    def check():
        fake.events.append(("check", fake.now))
        fake.now += next(costs)
        return len(fake.checks) == 4

    assert _wait.wait_until(check, 60, sleep=fake.sleep, clock=fake.clock, delays=[2, 2, 2, 2]) is True
    assert fake.sleeps == pytest.approx([1.7, 1.7, 0.5])  # 2 - 0.3 twice; after the 5 s round, a quarter of 2
    assert fake.checks == pytest.approx([1000.0, 1002.0, 1004.0, 1009.5])

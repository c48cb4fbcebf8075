"""Service profiles: latency per call class and ARM's token buckets (429 + Retry-After)."""

import copy
import time

import pytest
from simtest import SEED, SUB, Arm

from armsim import profile
from armsim.testing import ArmSim

NSGS = f"/subscriptions/{SUB}/providers/Microsoft.Network/networkSecurityGroups"


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_bucket_empties_then_refills_at_its_rate():
    clock = FakeClock()
    bucket = profile.TokenBucket(3, 2.0, clock)
    assert [bucket.take()[:2] for _ in range(3)] == [(True, 2), (True, 1), (True, 0)]
    admitted, left, wait = bucket.take()
    assert (admitted, left, wait) == (False, 0, 1)  # half a second to one token: Retry-After rounds up
    clock.now += 0.5
    assert bucket.take()[0] is True
    clock.now += 100
    assert bucket.take()[1] == 2  # never above its size


def test_throttle_keys_buckets_by_subscription_and_operation_type():
    clock = FakeClock()
    throttle = profile.Throttle(profile.load("azure", ["reads_bucket=1", "writes_bucket=1", "deletes_bucket=0"]), clock)
    assert throttle.take("SUB-A", "GET")[2] == 0
    assert throttle.take("sub-a", "GET")[2] > 0  # case-insensitive subscription
    assert throttle.take("sub-b", "GET")[2] == 0
    assert throttle.take("sub-a", "POST")[:2] == ("writes", 0)
    assert throttle.take("sub-a", "DELETE") == ("deletes", None, 0)  # no bucket
    assert throttle.throttled == 1


def test_azure_profile_uses_the_published_bucket_figures():
    azure = profile.load("azure")
    assert (azure.reads_bucket, azure.reads_refill, azure.writes_bucket, azure.writes_refill, azure.deletes_bucket, azure.deletes_refill) == (
        250,
        25.0,
        200,
        10.0,
        200,
        10.0,
    )
    assert profile.load("instant").latency("GET", False) == 0


@pytest.mark.parametrize("bad", ["nosuch=1", "read", "read=-1", "read=nan", "read=x"])
def test_bad_overrides_are_named(bad):
    with pytest.raises(ValueError, match="override|could not convert"):
        profile.load("azure", [bad])
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        profile.load("fast")


@pytest.fixture(scope="module")
def throttled_sim():
    overrides = ["reads_bucket=3", "reads_refill=0.25", "read=0", "list_page=0.3", "write=0", "action=0", "delete=0", "token=0", "apply_delay=0"]
    args = [a for o in overrides for a in ("--profile-set", o)]
    with ArmSim(copy.deepcopy(SEED), apply_delay=None, profile="azure", extra_args=args) as sim:
        yield sim


def test_empty_bucket_answers_429_with_retry_after_and_the_sdk_waits(throttled_sim):
    sim = throttled_sim
    sim.reset()
    arm = Arm(sim)
    answers = [arm.call("GET", NSGS) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ms-ratelimit-remaining-subscription-reads"] for a in answers] == ["2", "1", "0", "0"]
    # One token every 4 s: the wait is named in whole seconds.
    assert int(answers[3].headers["Retry-After"]) >= 1 and answers[3].json()["error"]["code"] == "SubscriptionRequestsThrottled"
    assert sim.admin("GET", "/config")["throttled"] == 1
    # The SDK's retry policy honours Retry-After: the list succeeds after waiting for a token.
    started = time.monotonic()
    assert len(list(sim.sdk_clients()[2].network_security_groups.list_all())) == 5
    assert time.monotonic() - started >= 1.3  # waited Retry-After, then one page's latency (list_page=0.3)
    assert sim.stats()["by_status"].get("429", 0) >= 1


def test_reset_refills_the_buckets(throttled_sim):
    sim = throttled_sim
    sim.reset()
    arm = Arm(sim)
    for _ in range(3):
        arm.call("GET", NSGS)
    sim.reset()
    assert arm.call("GET", NSGS).status_code == 200
    assert sim.admin("GET", "/config")["profile"]["name"] == "azure"

"""Two jit_policy runs for different VMs of the same `default` policy, started at the same time,
20 rounds: every VM of both runs is in the policy at the end, and the entries of the other team
(keep-1, keep-2 with custom ports) are untouched.

The JIT PUT has no ETag, so a read-merge-write can lose a concurrent writer's entry; jit_policy
re-reads after writing and re-merges when its entries are missing.

The race is forced, not hoped for: armsim barrier faults hold the first two policy GETs until
both writers have read, then the first two PUTs until both have written (so the later PUT drops
the earlier writer's entry), and a 300 ms latency on policy GETs keeps each verifying read after
both writes. Every round therefore has exactly one writer that must notice and merge again.

Rounds 1-5: two separate ansible-playbook processes. Rounds 6-20: two threads run jit_policy's
own ``reconcile_policy`` (the module's read-merge-write-verify step) through the real SDK against
armsim: the same race, without 30 more Ansible start-ups.
"""

import threading

from reltools import Background, assert_no_secret, jit_rules, policies, vm_id

from ansible_collections.jitaccess.azure.plugins.module_utils import _arm, _jit
from ansible_collections.jitaccess.azure.plugins.modules.jit_policy import PolicyApi, reconcile_policy

ROUNDS = 20
PROCESS_ROUNDS = 5
SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
POLICY = "/subscriptions/%s/resourcegroups/rg-c/providers/microsoft.security/locations/westeurope/jitnetworkaccesspolicies/default" % SUBSCRIPTION
KEEP_PORTS = [{"number": 2222, "protocol": "TCP", "allowed_source_address_prefixes": ["10.0.0.0/8"], "max_request_access_duration": "PT1H"}]


def _vms():
    vms = [{"name": "keep-%d" % n, "nics": [{"subnet": "vnet-c/default"}]} for n in (1, 2)]
    for side in ("a", "b"):
        vms += [{"name": "c%s-%02d" % (side, n), "nics": [{"subnet": "vnet-c/default"}]} for n in range(1, ROUNDS + 1)]
    return vms


ARMSIM_SEED = {
    "subscription_id": SUBSCRIPTION,
    "resource_groups": [
        {
            "name": "rg-c",
            "location": "westeurope",
            "network_security_groups": [{"name": "nsg-c"}],
            "virtual_networks": [{"name": "vnet-c", "address_space": "10.5.0.0/16", "subnets": [{"name": "default", "prefix": "10.5.0.0/24", "nsg": "nsg-c"}]}],
            "virtual_machines": _vms(),
        }
    ],
    "jit_policies": [
        {
            "name": "default",
            "resource_group": "rg-c",
            "virtual_machines": [
                {
                    "name": "keep-%d" % n,
                    "resource_group": "rg-c",
                    "ports": [{"number": 2222, "protocol": "TCP", "allowed_source_address_prefixes": ["10.0.0.0/8"]}],
                }
                for n in (1, 2)
            ],
        }
    ],
}
POLICY_PATH = "jitNetworkAccessPolicies/default?"
SLOW_READS = {"method": "GET", "path_contains": POLICY_PATH, "kind": "latency", "latency_ms": 300, "times": -1}


def force_race(armsim):
    """Both writers read before either writes, and both write before either verifies."""
    for method in ("GET", "PUT"):
        armsim.fault(method=method, path_contains=POLICY_PATH, kind="barrier", parties=2, timeout_ms=120000, times=2)


KEY = _arm.PolicyKey(SUBSCRIPTION, "rg-c", "westeurope", "default")


class _SdkModule:
    """Just enough of AzureJitModule for jit_policy.PolicyApi: the real ARM I/O layer, errors raised."""

    def __init__(self, sim):
        from azure.core.pipeline.transport import RequestsTransport

        from ansible_collections.jitaccess.azure.plugins.module_utils._api import ArmApi
        from ansible_collections.jitaccess.azure.plugins.module_utils._auth import CloudEndpoints

        info = sim.info
        cloud = CloudEndpoints("armsim", info["login_url"], info["arm_url"])
        self.api = ArmApi(sim.credential(), cloud, info["subscription_id"], transport=RequestsTransport(connection_verify=info["ca_bundle"]))

    def warn(self, _message):
        pass

    def progress(self, _message, verbosity=1):
        pass

    def azure_call(self, _action, function, *args, **kwargs):
        return function(*args, **kwargs)

    def fail_azure(self, exc, _action, **_result):
        raise exc


def sdk_round(armsim, number):
    """Two writers, each adding its VM with jit_policy's reconcile_policy."""
    outcomes, errors = {}, []

    def writer(side):
        try:
            api = PolicyApi(_SdkModule(armsim))
            desired = [_jit.build_policy_vm(vm_id("rg-c", "c%s-%02d" % (side, number)), _jit.default_port_rules("Linux"))]
            outcomes[side] = reconcile_policy(KEY, desired, [], False, api, check_mode=False)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(side,)) for side in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return [{"policies": [{"attempts": outcome["attempts"]}]} for outcome in outcomes.values()]


def policy_task(name, vm_name):
    return {"name": name, "jitaccess.azure.jit_policy": {"virtual_machines": [{"name": vm_name, "resource_group": "rg-c"}]}}


def test_concurrent_jit_policy_writers_lose_nothing(armsim, tmp_path, ledger):
    seed = policies(armsim.state())[POLICY]
    armsim.fault(**SLOW_READS)
    results = []

    # Rounds 1-5: two ansible-playbook processes started together.
    for number in range(1, PROCESS_ROUNDS + 1):
        force_race(armsim)
        runs = [
            Background(
                armsim,
                [{"hosts": "localhost", "gather_facts": False, "tasks": [policy_task("policy", "c%s-%02d" % (side, number))]}],
                str(tmp_path / ("round%d-%s" % (number, side))),
            )
            for side in ("a", "b")
        ]
        for run in runs:
            assert run.wait(120) == 0, run.output()[-3000:]
            results.append(run.result("policy"))
            assert_no_secret(armsim.info["client_secret"], run.output())

    # Rounds 6-20: the module's reconcile step in two threads.
    for number in range(PROCESS_ROUNDS + 1, ROUNDS + 1):
        force_race(armsim)
        results += sdk_round(armsim, number)
    assert len(results) == 2 * ROUNDS

    armsim.clear_faults()
    after = policies(armsim.state())[POLICY]
    wanted = {vm_id("rg-c", "c%s-%02d" % (side, n)).lower() for side in "ab" for n in range(1, ROUNDS + 1)}
    missing = wanted - set(after)
    assert not missing, "entries lost to a concurrent writer: %s" % sorted(missing)
    for key, ports in seed.items():
        assert after[key] == ports, "the other team's entry %s changed" % key
    assert len(after) == 2 + 2 * ROUNDS
    # one deny rule per VM on the subnet NSG
    assert len({rule["destination"] for rule in jit_rules(armsim.state(), "deny")}) == 2 + 2 * ROUNDS
    rewrites = sum(1 for result in results for policy in result["policies"] if policy["attempts"] > 1)
    # the race happened in every round and exactly one of the two writers had to merge again
    assert rewrites == ROUNDS, "%d re-merges in %d forced races" % (rewrites, ROUNDS)
    print("concurrency: %d rounds, %d re-merges" % (ROUNDS, rewrites))
    ledger.add(cases=ROUNDS, concurrent_rounds=ROUNDS, entries_lost=len(missing))


def test_a_throttled_writer_merges_again_instead_of_resending_a_stale_body(armsim, ledger):
    """Both writers read the same policy; the first PUT is throttled (429, Retry-After 5 s), the
    other writer's PUT goes through meanwhile. Resending the throttled body (what the SDK's own
    retry does) would drop the other writer's entry after both reported success; jit_policy reads
    again after the wait and merges its entry into what is there now."""
    armsim.fault(method="GET", path_contains=POLICY_PATH, kind="barrier", parties=2, timeout_ms=120000, times=2)
    armsim.fault(method="PUT", path_contains=POLICY_PATH, status=429, retry_after=5, times=1)
    results = sdk_round(armsim, 1)
    armsim.clear_faults()
    after = policies(armsim.state())[POLICY]
    missing = {vm_id("rg-c", "c%s-01" % side).lower() for side in "ab"} - set(after)
    assert not missing, "entries lost to a resent stale body: %s" % sorted(missing)
    assert len(after) == 4 and len(results) == 2
    assert armsim.stats()["by_operation"]["PUT jitNetworkAccessPolicies"] == 3  # the 429, then one write each
    ledger.add(cases=1, entries_lost=len(missing))

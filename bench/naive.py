# Copyright (c) jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The naive rollout users have today: one read-modify-write PUT per VM.

This is what a loop over ``Set-AzJitNetworkAccessPolicy`` does (and what a per-VM task that reads
the policy, adds its VM and writes it back does): for every VM, GET the JIT policy of the VM's
resource group and region (404 -> a new policy), put the VM's entry in the VM list (merged by VM
id, so other VMs are kept -- the *careful* variant of the cmdlet loop), and PUT the whole policy.
Like the cmdlet it always writes; it does not compare first.

It uses the same SDK clients and the same raw-JSON calls as the collection's jit_policy module
(azure-mgmt-security ``jit_network_access_policies.get`` / ``create_or_update``), one process,
sequential, no artificial delay. It is given the list of target VMs for free (no discovery reads),
which favours it.

    python bench/naive.py --info armsim-ready.json --targets targets.json [--sample N] > summary.json

``targets.json``: ``[{"id", "resource_group", "location", "ports": [REST port dicts]}, ...]``.
``--sample N``: only every k-th target (k = len / N), a deterministic spread over every policy.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time


def clients(info):
    from azure.mgmt.security import SecurityCenter
    from credential import from_ready_info

    credential = from_ready_info(info)
    arm = info["arm_url"]
    return SecurityCenter(credential, info["subscription_id"], base_url=arm, credential_scopes=[arm + "/.default"], connection_verify=info["ca_bundle"])


def sample(targets, size):
    """Every k-th target: deterministic, and spread over every resource group / policy."""
    if not size or size >= len(targets):
        return list(targets)
    step = len(targets) / size
    return [targets[int(i * step)] for i in range(size)]


def _raw(pipeline_response, _deserialized, _headers):
    text = pipeline_response.http_response.text()
    return json.loads(text) if text else None


def rollout(security, targets, policy_name="default"):
    """One GET + one PUT per VM. Returns counts of each call."""
    from azure.core.exceptions import ResourceNotFoundError

    operations = security.jit_network_access_policies
    gets = puts = 0
    for target in targets:
        rg, location = target["resource_group"], target["location"]
        gets += 1
        try:
            policy = operations.get(rg, location, policy_name, cls=_raw)
        except ResourceNotFoundError:
            policy = None
        vms = list(((policy or {}).get("properties") or {}).get("virtualMachines") or [])
        vms = [vm for vm in vms if vm["id"].lower() != target["id"].lower()]
        vms.append({"id": target["id"], "ports": target["ports"]})
        body = {"kind": "Basic", "properties": {"virtualMachines": vms}}
        puts += 1
        operations.create_or_update(rg, location, policy_name, io.BytesIO(json.dumps(body).encode("utf-8")), content_type="application/json", cls=_raw)
    return {"gets": gets, "puts": puts}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--info", required=True, help="armsim ready JSON")
    parser.add_argument("--targets", required=True, help="JSON list of target VMs")
    parser.add_argument("--sample", type=int, default=0, help="only this many targets (every k-th)")
    args = parser.parse_args(argv)
    with open(args.info, encoding="utf-8") as stream:
        info = json.load(stream)
    with open(args.targets, encoding="utf-8") as stream:
        targets = json.load(stream)
    chosen = sample(targets, args.sample)
    start = time.monotonic()
    security = clients(info)
    counts = rollout(security, chosen)
    json.dump(dict(counts, vms=len(chosen), of=len(targets), seconds=round(time.monotonic() - start, 3)), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

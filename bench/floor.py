# Copyright (c) jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The floor: the minimum work a phase needs, and nothing else.

A plain Python script that makes exactly the necessary ARM calls through the same SDK pipeline as
the collection (azure-mgmt-core's ``ARMPipelineClient``: retry, bearer token, logging policies;
raw JSON, no models), sequentially as the collection does, and keeps nothing it does not need:

* ``discovery`` -- the paged subscription-wide lists an exposure verdict needs (VMs with status,
  NICs, NSGs, virtual networks, public IPs, JIT policies, the Defender for Servers plan);
* ``rollout``   -- the same lists, then one GET + one PUT per policy that changes (the final
  policy bodies are given for free: the floor does no planning);
* ``access``    -- one initiate per policy (the request bodies are given for free).

The bench times it from process start to the last answer (to every port usable, for access), as
it times ``ansible-playbook``, so ours / floor is what the collection costs above the calls.

    python bench/floor.py --info armsim-ready.json --phase rollout --plan plan.json > summary.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

COMPUTE = "2024-07-01"
NETWORK = "2024-05-01"
SECURITY = "2020-01-01"
PRICING = "2024-01-01"
LISTS = (
    ("Microsoft.Compute/virtualMachines", COMPUTE, {"statusOnly": "true"}),
    ("Microsoft.Network/networkInterfaces", NETWORK, {}),
    ("Microsoft.Network/networkSecurityGroups", NETWORK, {}),
    ("Microsoft.Network/virtualNetworks", NETWORK, {}),
    ("Microsoft.Network/publicIPAddresses", NETWORK, {}),
    ("Microsoft.Security/jitNetworkAccessPolicies", SECURITY, {}),
)


class Client:
    def __init__(self, info):
        from azure.core.pipeline.policies import HeadersPolicy, RequestIdPolicy, RetryPolicy, UserAgentPolicy
        from azure.mgmt.core import ARMPipelineClient
        from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy
        from credential import from_ready_info

        credential = from_ready_info(info)
        arm = info["arm_url"]

        policies = [
            RequestIdPolicy(),
            HeadersPolicy({"Accept": "application/json"}),
            UserAgentPolicy("jitaccess-bench-floor"),
            RetryPolicy(),
            ARMChallengeAuthenticationPolicy(credential, arm + "/.default"),
        ]
        # TLS verified against armsim's CA (REQUESTS_CA_BUNDLE, set by the bench as for the others).
        self.client = ARMPipelineClient(base_url=arm, policies=policies)
        self.subscription = info["subscription_id"]
        self.calls = 0

    def request(self, method, url, api_version=None, params=None, body=None):
        from azure.core.rest import HttpRequest

        query = dict(params or {})
        if api_version:
            query["api-version"] = api_version
        request = HttpRequest(method, self.client.format_url(url), params=query, **({} if body is None else {"json": body}))
        response = self.client.send_request(request)
        self.calls += 1
        if response.status_code == 404 and method == "GET":
            return None
        response.raise_for_status()
        return response.json() if response.content else None

    def list(self, provider, api_version, params):
        items, url, query = [], "/subscriptions/%s/providers/%s" % (self.subscription, provider), dict(params)
        while url:
            body = self.request("GET", url, api_version, query) or {}
            items.extend(body.get("value") or [])
            url, query, api_version = body.get("nextLink"), {}, None
        return items


def discovery(client):
    found = {provider: len(client.list(provider, version, params)) for provider, version, params in LISTS}
    client.request("GET", "/subscriptions/%s/providers/Microsoft.Security/pricings/VirtualMachines" % client.subscription, PRICING)
    return found


def rollout(client, plan):
    found = discovery(client)
    for policy in plan:
        client.request("GET", policy["id"], SECURITY)
        client.request("PUT", policy["id"], SECURITY, body=policy["body"])
    return dict(found, policies=len(plan))


def access(client, plan):
    for policy in plan:
        client.request("POST", policy["id"] + "/initiate", SECURITY, body=policy["body"])
    return {"policies": len(plan)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--info", required=True, help="armsim ready JSON")
    parser.add_argument("--phase", required=True, choices=("discovery", "rollout", "access"))
    parser.add_argument("--plan", help="JSON list of {id, body}: the policies to write / initiate")
    args = parser.parse_args(argv)
    with open(args.info, encoding="utf-8") as stream:
        info = json.load(stream)
    plan = []
    if args.plan:
        with open(args.plan, encoding="utf-8") as stream:
            plan = json.load(stream)
    start = time.monotonic()
    client = Client(info)
    summary = discovery(client) if args.phase == "discovery" else rollout(client, plan) if args.phase == "rollout" else access(client, plan)
    json.dump(dict(summary, calls=client.calls, seconds=round(time.monotonic() - start, 3)), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

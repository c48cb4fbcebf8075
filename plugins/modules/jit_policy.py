#!/usr/bin/python
# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: jit_policy
short_description: Put Azure VMs under just-in-time (JIT) VM access, or take them out
version_added: 0.1.0
description:
  - Adds virtual machines to (or removes them from) Microsoft Defender for Cloud just-in-time
    network access policies, safely and in bulk.
  - B(Merge-safe.) A JIT policy is shared by every VM of a resource group and region. This module
    reads each affected policy, changes only the entries of the VMs it is given, and keeps every
    other VM entry as it is (unless O(purge_virtual_machines=true)). C(Set-AzJitNetworkAccessPolicy)
    instead replaces the whole VM list and silently un-protects the VMs it was not given.
  - B(Bulk.) VMs may span resource groups and regions. VMs are resolved with a constant number of
    list calls, grouped by policy (subscription, resource group, region, O(policy_name)), and each
    affected policy gets one read and at most one write. Nothing is written when nothing differs.
  - B(Verified.) After a write the policy is read again; every VM asked for must be there as asked
    and no VM entry that was present may be lost. The JIT API has no ETag, so a concurrent writer can
    overwrite the change; when that is detected the module merges again on the fresh policy and
    writes again (at most three writes per policy), then fails clearly if it cannot converge.
  - Comparison is done after normalisation (ports and prefixes sorted, V(PT180M) equals V(PT3H), VM
    ids case-insensitive), so a second run with the same input reports no change and makes no write.
  - Every option is validated before the first write; a bad value fails with a message naming it
    and the allowed range, and changes nothing.
author:
  - jitaccess.azure contributors (@jitaccess)
extends_documentation_fragment:
  - jitaccess.azure._auth
  - jitaccess.azure._attributes
  - jitaccess.azure._attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: Reads the policies and reports what would change; makes no write.
  diff_mode:
    support: full
    details: Returns one before/after entry per changed policy, showing its VM entries.
  idempotent:
    support: full
options:
  virtual_machines:
    description:
      - The VMs to put under JIT (O(state=present)) or to take out of it (O(state=absent)).
      - Each VM is given by O(virtual_machines[].id), or by O(virtual_machines[].name) and
        O(virtual_machines[].resource_group) in the subscription O(subscription_id).
      - A VM may appear only once. Every VM must exist.
    type: list
    elements: dict
    required: true
    suboptions:
      id:
        description:
          - Full resource id of the VM,
            C(/subscriptions/<sub>/resourceGroups/<group>/providers/Microsoft.Compute/virtualMachines/<name>).
          - Mutually exclusive with O(virtual_machines[].name) and O(virtual_machines[].resource_group).
        type: str
      name:
        description:
          - Name of the VM. Requires O(virtual_machines[].resource_group).
        type: str
      resource_group:
        description:
          - Resource group of the VM. Requires O(virtual_machines[].name).
        type: str
      ports:
        description:
          - Port rules for this VM only, replacing O(ports) (and the OS defaults) for it.
          - Same format as O(ports).
        type: list
        elements: dict
        suboptions:
          number:
            description: Port number, 0 to 65535. Each number may appear once per VM.
            type: int
            required: true
          protocol:
            description: Protocol of the port.
            type: str
            choices: [TCP, UDP, '*']
            default: TCP
          allowed_source_address_prefixes:
            description:
              - Source IPv4 addresses or CIDRs from which access may be requested, or V(*) for any.
              - When neither this nor O(virtual_machines[].ports[].allowed_source_address_prefix) is set, V(*).
            type: list
            elements: str
          allowed_source_address_prefix:
            description:
              - One source prefix; a shorthand for a one-element
                O(virtual_machines[].ports[].allowed_source_address_prefixes). Mutually exclusive with it.
            type: str
          max_request_access_duration:
            description:
              - Longest access a request may open, 5 minutes to 24 hours.
              - ISO 8601 (V(PT3H), V(PT90M), V(PT1H30M)) or a short form (V(3h), V(90m), V(1h30m)).
            type: str
            default: PT3H
  ports:
    description:
      - Port rules for every VM in O(virtual_machines) that has no O(virtual_machines[].ports) of its own.
      - When not set, OS-aware defaults are used for each VM, with protocol V(TCP), any source and
        V(PT3H) - port 22 for Linux VMs; ports 3389, 5985 and 5986 for Windows VMs.
      - Ignored with O(state=absent).
    type: list
    elements: dict
    suboptions:
      number:
        description: Port number, 0 to 65535. Each number may appear once.
        type: int
        required: true
      protocol:
        description: Protocol of the port.
        type: str
        choices: [TCP, UDP, '*']
        default: TCP
      allowed_source_address_prefixes:
        description:
          - Source IPv4 addresses or CIDRs from which access may be requested, or V(*) for any.
          - IPv6 is not supported by JIT. A CIDR with host bits set is refused.
          - When neither this nor O(ports[].allowed_source_address_prefix) is set, V(*).
        type: list
        elements: str
      allowed_source_address_prefix:
        description:
          - One source prefix; a shorthand for a one-element O(ports[].allowed_source_address_prefixes).
            Mutually exclusive with it.
        type: str
      max_request_access_duration:
        description:
          - Longest access a request may open, 5 minutes to 24 hours.
          - ISO 8601 (V(PT3H), V(PT90M), V(PT1H30M)) or a short form (V(3h), V(90m), V(1h30m)).
        type: str
        default: PT3H
  ports_by_os_type:
    description:
      - Port rules by OS type, for VMs that have no O(virtual_machines[].ports) of their own; a VM
        whose OS type is not a key here gets O(ports) (or the OS-aware defaults).
      - Keys are OS types, V(Linux) or V(Windows) (case-insensitive). Each value is a list of port
        rules with the keys of O(ports) (C(number), C(protocol), C(allowed_source_address_prefixes)
        or C(allowed_source_address_prefix), C(max_request_access_duration)) and the same defaults.
      - Lets one call cover a mixed fleet with VMs given by id only, which keeps the task small on
        large fleets (the C(jitaccess.azure.jit_fleet) role uses it).
      - Ignored with O(state=absent).
    type: dict
    version_added: 0.2.0
  detail:
    description:
      - V(full) returns every VM entry of each affected policy in RV(policies[].virtual_machines).
      - V(summary) leaves RV(policies[].virtual_machines) out; RV(policies[].changes) and
        RV(policies[].virtual_machine_count) are still returned. Meant for runs over thousands of
        VMs, whose full result Ansible would otherwise copy several times.
    type: str
    choices: [full, summary]
    default: full
    version_added: 0.2.0
  enable_defender_for_servers:
    description:
      - Just-in-time VM access exists only on subscriptions with Microsoft Defender for Servers Plan 2.
        With V(true), each subscription of the given VMs that lacks it gets Plan 2 turned on (its
        C(VirtualMachines) pricing set to V(Standard), sub-plan V(P2)) before any policy is written,
        and RV(defender_for_servers_enabled) lists them.
      - B(Plan 2 is billed per server and hour) for every server of the subscription, not only
        those under JIT. Off by default; without it, a policy write on such a subscription fails
        with Azure's error. M(jitaccess.azure.nsg_jit_facts) reports each subscription's plan.
      - Needs C(Microsoft.Security/pricings/read) and C(Microsoft.Security/pricings/write).
    type: bool
    default: false
    version_added: 0.2.0
  policy_name:
    description:
      - Name of the JIT policy. The Azure portal and Defender for Cloud use V(default).
      - One policy with this name exists per resource group and region; each VM goes into the
        policy of its own resource group and region.
    type: str
    default: default
  state:
    description:
      - V(present) adds the VMs to their policy, or updates their ports; the policy is created
        when it does not exist.
      - V(absent) removes the VMs from their policy; a policy left without VMs is deleted.
        Azure then removes the VMs' JIT deny rules from their NSGs.
    type: str
    choices: [present, absent]
    default: present
  purge_virtual_machines:
    description:
      - With O(state=present), also remove from each affected policy every VM not named in
        O(virtual_machines). Policies of other resource groups or regions are never touched.
      - Ignored with O(state=absent).
    type: bool
    default: false
  skip_unsupported:
    description:
      - JIT cannot protect a VM without a network security group on any of its NICs or subnets.
      - When V(false), such a VM fails the task before anything is written.
      - When V(true), such VMs are left out and listed in RV(skipped_virtual_machines) with the reason.
    type: bool
    default: false
  update_existing:
    description:
      - V(false) leaves the entry of every named VM that is already in its policy as it is (its
        ports are not changed); only VMs not yet under JIT get the ports given. Such VMs are still
        checked for O(drift). The M(jitaccess.azure.jit_fleet) role uses it to repair drift without
        changing ports.
    type: bool
    default: true
    version_added: 0.2.0
  drift:
    description:
      - What to do when a JIT deny rule of a VM in an affected policy is missing from an NSG on the
        VM's path (deleted by a tool that owns the NSG's rule list - Terraform, Bicep,
        C(azure_rm_securitygroup) with C(purge_rules)). Checked from the NSGs the module reads anyway.
      - V(repair) writes that policy again, unchanged (one write per drifted policy, never per VM);
        Azure re-applies the deny rules of every VM of a policy it is given. The module then waits,
        up to O(wait_timeout), until the rules are back, and lists them in RV(repaired).
      - V(report) only lists them (RV(policies[].drift)) and warns; V(ignore) does not look.
      - Check mode and diff show a repair without writing.
    type: str
    choices: [repair, report, ignore]
    default: repair
    version_added: 0.2.0
  wait_timeout:
    description:
      - Seconds to wait, after repairing drift, for the deny rules to be back on every NSG. The
        task fails when they are not, naming each one still missing.
    type: int
    default: 300
    version_added: 0.2.0
  reuse_inventory:
    description:
      - Path of an inventory file written moments before, in the same run, by
        P(jitaccess.azure.nsg_jit_facts#module)'s O(jitaccess.azure.nsg_jit_facts#module:save_inventory). The
        VMs, network interfaces, virtual networks and network security groups are taken from it instead
        of being listed again (the JIT policies are always read afresh before writing).
      - A file that cannot be used (missing, older than an hour, another subscription) is ignored with
        a warning, and the fleet is listed as usual.
      - The C(jitaccess.azure.jit_fleet) role passes the file of its first read, so a rollout reads the
        fleet once.
    type: path
    version_added: 0.2.0
  bastion:
    description:
      - Allow access only from Azure Bastion - the common hardened set-up. Every port of each VM
        named gets the address prefix(es) of a Bastion host's C(AzureBastionSubnet) as its
        allowed source, so requests can only open access for Bastion and admins connect through it.
      - V(auto) picks, per VM, the Bastion host of the VM's own virtual network, else the one of a
        virtual network directly peered with it (peering state C(Connected)); VMs in different
        spokes may get different Bastions. A VM that no Bastion can reach, or that more than one
        can reach the same way, fails the task before anything is written, naming the VM and the
        candidates.
      - A Bastion host may be named instead, by C(id) or by C(name) and C(resource_group) (in
        O(subscription_id)), or given as its resource id; it must exist and reach every VM named.
      - Mutually exclusive with an allowed source prefix in O(ports), O(ports_by_os_type) or
        O(virtual_machines[].ports). Ignored with O(state=absent).
      - Reads one list of Bastion hosts per subscription (of the VMs, of the named host, and of
        VNets peered with the VMs' VNets), only when set. Needs C(Microsoft.Network/bastionHosts/read).
      - See U(https://github.com/jitaccess/azure/blob/main/docs/bastion.md) for the pattern end to end.
    type: raw
    version_added: 0.2.0
notes:
  - "RBAC: configuring JIT needs C(Microsoft.Security/locations/jitNetworkAccessPolicies/write) and
    C(Microsoft.Compute/virtualMachines/write), plus read access to the VMs, network interfaces and
    virtual networks (C(Microsoft.Security/locations/jitNetworkAccessPolicies/read),
    C(Microsoft.Compute/virtualMachines/read), C(Microsoft.Network/networkInterfaces/read),
    C(Microsoft.Network/virtualNetworks/read)); O(state=absent) may also need
    C(Microsoft.Security/locations/jitNetworkAccessPolicies/delete)."
  - JIT needs Microsoft Defender for Servers Plan 2 on the subscription. Classic VMs are not supported.
  - A VM's JIT policy lives in the VM's resource group and the VM's region; its id is
    C(/subscriptions/<sub>/resourceGroups/<group>/providers/Microsoft.Security/locations/<region>/jitNetworkAccessPolicies/<policy_name>).
  - The JIT policy PUT replaces the whole VM list and has no ETag, so two writers can overwrite each
    other. This module merges, verifies after writing and retries; other tools may not.
  - When a VM is put under JIT, Azure writes a deny rule for the policy ports on every NSG on the VM's
    path (NIC NSG and subnet NSG), named C(MicrosoftDefenderForCloud-JITRule_...), with the VM's private
    IP as destination. It is placed after any existing rule that already matches those ports (else at
    the highest free priority from 4096 down), so a pre-existing allow rule from the Internet keeps
    admitting traffic and bypasses JIT. Use M(jitaccess.azure.nsg_jit_facts) to find such bypasses.
  - Tools that own an NSG's full rule set (Terraform, azure_rm_securitygroup with purge) delete JIT
    deny rules on their next run.
seealso:
  - module: jitaccess.azure.jit_request
  - module: jitaccess.azure.nsg_jit_facts
  - name: Just-in-time VM access overview
    description: Microsoft Defender for Cloud documentation.
    link: https://learn.microsoft.com/azure/defender-for-cloud/just-in-time-access-overview
"""

EXAMPLES = r"""
- name: Put two VMs under JIT with the OS defaults (Linux 22; Windows 3389, 5985, 5986)
  jitaccess.azure.jit_policy:
    virtual_machines:
      - name: web-1
        resource_group: rg-web
      - name: app-1
        resource_group: rg-app

- name: Allow SSH only from the office, for at most 1 hour; one VM also gets port 8443
  jitaccess.azure.jit_policy:
    virtual_machines:
      - name: web-1
        resource_group: rg-web
      - id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/web-2
        ports:
          - number: 22
            allowed_source_address_prefixes: [203.0.113.0/24]
            max_request_access_duration: 1h
          - number: 8443
            max_request_access_duration: 30m
    ports:
      - number: 22
        allowed_source_address_prefixes: [203.0.113.0/24]
        max_request_access_duration: 1h

- name: Preview a fleet rollout, leaving out VMs that have no NSG
  jitaccess.azure.jit_policy:
    virtual_machines: "{{ candidates }}"
    skip_unsupported: true
  check_mode: true
  diff: true
  register: preview

- name: Make the policy of rg-web hold exactly these VMs
  jitaccess.azure.jit_policy:
    virtual_machines:
      - name: web-1
        resource_group: rg-web
    purge_virtual_machines: true

- name: Allow SSH only from the Azure Bastion of each VM's network (or of its peered hub)
  jitaccess.azure.jit_policy:
    virtual_machines:
      - name: app-1
        resource_group: rg-app
    bastion: auto

- name: Allow access only from a named Bastion host
  jitaccess.azure.jit_policy:
    virtual_machines:
      - name: app-1
        resource_group: rg-app
    bastion:
      name: bas-hub
      resource_group: rg-hub

- name: Take a VM out of JIT (its deny rules are removed; an empty policy is deleted)
  jitaccess.azure.jit_policy:
    virtual_machines:
      - name: web-1
        resource_group: rg-web
    state: absent
"""

RETURN = r"""
defender_for_servers_enabled:
  description:
    - Subscriptions on which Defender for Servers Plan 2 was turned on (would be, in check mode), with
      O(enable_defender_for_servers).
  returned: always
  type: list
  elements: str
  sample: []
  version_added: 0.2.0
policies:
  description:
    - Each policy holding one of the given VMs, as it is after the run (as it would be, in check mode).
    - When the task fails on an Azure error, the policies finished before the failure; C(changed)
      then says whether anything had been written (the policy being written when it failed
      included, if its write had gone through).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Resource id of the policy.
      type: str
      sample: "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Security\
        /locations/westeurope/jitNetworkAccessPolicies/default"
    name:
      description: Name of the policy.
      type: str
      sample: default
    resource_group:
      description: Resource group of the policy (that of its VMs).
      type: str
      sample: rg-web
    location:
      description: Region of the policy (that of its VMs).
      type: str
      sample: westeurope
    action:
      description: What was done to the policy (or would be, in check mode).
      type: str
      choices: [created, updated, deleted, repaired, unchanged]
      sample: updated
    changed:
      description: Whether the policy was (or would be) written or deleted.
      type: bool
      sample: true
    attempts:
      description: Number of writes made to this policy (more than one when a concurrent writer was repaired).
      type: int
      sample: 1
    drift:
      description:
        - JIT deny rules found missing for the VMs of this policy before any write (same entries
          as RV(repaired)). Listed whatever O(drift) says, except V(ignore).
      type: list
      elements: dict
      version_added: 0.2.0
    changes:
      description: Lower-cased ids of the VM entries added, changed and removed.
      type: dict
      sample:
        added: [/subscriptions/00000000-0000-0000-0000-000000000001/resourcegroups/rg-web/providers/microsoft.compute/virtualmachines/web-1]
        changed: []
        removed: []
      contains:
        added:
          description: VMs added to the policy.
          type: list
          elements: str
        changed:
          description: VMs whose ports changed.
          type: list
          elements: str
        removed:
          description: VMs removed from the policy.
          type: list
          elements: str
    virtual_machine_count:
      description: Number of VM entries in the policy after this run (0 when it was deleted).
      type: int
      sample: 12
      version_added: 0.2.0
    virtual_machines:
      description:
        - Every VM entry of the policy, including VMs not named in this run; empty when the policy
          was deleted. Ports are sorted by number; durations in canonical ISO 8601.
        - Only with O(detail=full).
      type: list
      elements: dict
      sample:
        - id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/web-1
          ports:
            - number: 22
              protocol: TCP
              allowed_source_address_prefixes: ["*"]
              max_request_access_duration: PT3H
      contains:
        id:
          description: Resource id of the VM.
          type: str
        ports:
          description: Port rules of the VM.
          type: list
          elements: dict
          contains:
            number:
              description: Port number.
              type: int
            protocol:
              description: V(TCP), V(UDP) or V(*).
              type: str
            allowed_source_address_prefixes:
              description: Allowed source prefixes, sorted.
              type: list
              elements: str
            max_request_access_duration:
              description: Longest access a request may open, ISO 8601.
              type: str
repaired:
  description:
    - JIT deny rules that were missing and that writing their policy again brought back (or would,
      in check mode), one entry per VM, NSG and private IP. Empty when nothing drifted, or with
      O(drift=report) or O(drift=ignore).
  returned: always
  type: list
  elements: dict
  version_added: 0.2.0
  sample:
    - policy_id: "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Security\
        /locations/westeurope/jitNetworkAccessPolicies/default"
      vm_id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/web-1
      vm_name: web-1
      nsg_id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web
      private_ip: 10.1.0.4
      missing_ports: [22]
skipped_virtual_machines:
  description:
    - VMs left out because JIT cannot protect them (only with O(skip_unsupported=true)).
    - Not named C(skipped), which Ansible reserves for a skipped task.
  returned: always
  type: list
  elements: dict
  sample:
    - id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/legacy-1
      name: legacy-1
      resource_group: rg-web
      reason: no network security group on any NIC or subnet of the VM
  contains:
    id:
      description: Resource id of the VM.
      type: str
    name:
      description: Name of the VM.
      type: str
    resource_group:
      description: Resource group of the VM.
      type: str
    reason:
      description: Why JIT cannot protect the VM.
      type: str
diff:
  description:
    - In diff mode, one entry per changed policy with the policy's VM entries before and after
      (normalised, sorted by lower-cased VM id).
  returned: when diff mode is enabled and a policy changes
  type: list
  elements: dict
  sample:
    - before_header: "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Security\
        /locations/westeurope/jitNetworkAccessPolicies/default"
      after_header: "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Security\
        /locations/westeurope/jitNetworkAccessPolicies/default"
      before:
        virtual_machines: []
      after:
        virtual_machines:
          - id: /subscriptions/00000000-0000-0000-0000-000000000001/resourcegroups/rg-web/providers/microsoft.compute/virtualmachines/web-1
            ports:
              - number: 22
                protocol: TCP
                allowedSourceAddressPrefix: "*"
                maxRequestAccessDuration: PT3H
"""


import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from ansible_collections.jitaccess.azure.plugins.module_utils import _access, _arm, _bastion, _jit, _nsg, _topology  # noqa: E402
from ansible_collections.jitaccess.azure.plugins.module_utils._api import (  # noqa: E402
    SECURITY_API_VERSION,
    enable_servers_plan_2,
    list_jit_policies,
    read_servers_plan,
    transient_delay,
)
from ansible_collections.jitaccess.azure.plugins.module_utils._arm import describe_error  # noqa: E402
from ansible_collections.jitaccess.azure.plugins.module_utils._module import AzureError, AzureJitModule, vm_references  # noqa: E402
from ansible_collections.jitaccess.azure.plugins.module_utils._parallel import side_by_side  # noqa: E402
from ansible_collections.jitaccess.azure.plugins.module_utils._topology import (  # noqa: E402
    build_topology,
    describe_inventory,
    load_inventory,
    not_found_message,
    nsgs_by_id,
    read_inventory,
    read_nsgs,
    subscriptions_of,
)
from ansible_collections.jitaccess.azure.plugins.module_utils._wait import DEFAULT_WAIT_TIMEOUT, backoff_delays, wait_until  # noqa: E402

MAX_WRITE_ATTEMPTS = 3
"""Writes per policy before giving up on a concurrent writer."""

BATCH_MIN_POLICIES = 3
"""From this many policies on, they are read with one paged list per subscription before the
writes and verified with one more after them, instead of two GETs per policy."""
WRITE_CONCURRENCY = 8
"""Policy writes of a batch in flight at once. Each PUT takes about a second on Azure, and ARM
refills 10 writes/s per subscription: eight at a time cut the wait by eight and stay under it."""

_PORT_RULES = dict(
    type="list",
    elements="dict",
    options=dict(
        number=dict(type="int", required=True),
        protocol=dict(type="str", choices=list(_jit.PROTOCOLS), default=_jit.DEFAULT_PROTOCOL),
        allowed_source_address_prefixes=dict(type="list", elements="str"),
        allowed_source_address_prefix=dict(type="str"),
        max_request_access_duration=dict(type="str", default=_jit.DEFAULT_MAX_REQUEST_ACCESS_DURATION),
    ),
    mutually_exclusive=[["allowed_source_address_prefix", "allowed_source_address_prefixes"]],
)

ARGUMENT_SPEC = dict(
    virtual_machines=vm_references(ports=_PORT_RULES),
    ports=_PORT_RULES,
    ports_by_os_type=dict(type="dict"),
    detail=dict(type="str", choices=["full", "summary"], default="full"),
    enable_defender_for_servers=dict(type="bool", default=False),
    policy_name=dict(type="str", default=_arm.DEFAULT_POLICY_NAME),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    purge_virtual_machines=dict(type="bool", default=False),
    skip_unsupported=dict(type="bool", default=False),
    drift=dict(type="str", choices=["repair", "report", "ignore"], default="repair"),
    update_existing=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=DEFAULT_WAIT_TIMEOUT),
    reuse_inventory=dict(type="path"),
    bastion=dict(type="raw"),
)


# --------------------------------------------------------------------------------------------------
# Pure steps (unit-tested in tests/unit/plugins/modules/test_jit_policy.py)


class PolicyConvergenceError(Exception):
    """A policy could not be brought to the desired state because another writer kept replacing it."""


class TransientWriteError(Exception):
    """A policy write was throttled or failed in transit: ``delay`` seconds before trying again,
    ``error`` the ARM error (what the module reports when the retries run out)."""

    def __init__(self, error, delay):
        super().__init__(str(error))
        self.error = error
        self.delay = delay


MAX_TRANSIENT_RETRIES = 5
"""Throttled or failed policy writes retried (each after re-reading and re-merging) per policy."""


def _validate_policy_name(name):
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise _arm.JitValidationError(f"policy_name {name!r} is not valid: expected a non-empty name without '/'")
    return name.strip()


def validate_options(params, subscription):
    """Validate every option without touching Azure.

    Returns ``(refs, default_ports)``: ``refs`` is a list of ``{"id", "ports"}`` (``ports`` the
    canonical per-VM override or ``None``); ``default_ports`` maps a lower-case OS type (from
    ``ports_by_os_type``) or ``None`` (from ``ports``) to canonical port rules.
    Raises :class:`_arm.JitValidationError` naming the bad value.
    """
    _validate_policy_name(params.get("policy_name"))
    vms = params.get("virtual_machines") or []
    if not vms:
        raise _arm.JitValidationError("virtual_machines is empty: name at least one VM (by id, or by name and resource_group)")
    present = params.get("state", "present") == "present"
    default_ports = {}
    if present and params.get("ports") is not None:
        if not params["ports"]:
            raise _arm.JitValidationError("ports is empty: give at least one port rule, or omit ports for the OS defaults")
        default_ports[None] = _jit.normalize_port_rules(params["ports"], name="ports")
    if present and params.get("ports_by_os_type") is not None:
        default_ports.update(_ports_by_os_type(params["ports_by_os_type"]))
    refs = []
    seen = {}
    for reference in vms:
        given = {key: reference.get(key) for key in ("id", "name", "resource_group")}
        vm_id = _arm.vm_id_from_reference(given, subscription)
        key = _arm.normalize_id(vm_id)
        if key in seen:
            raise _arm.JitValidationError(f"virtual machine {vm_id} is listed more than once in virtual_machines (also as {seen[key]}): list each VM once")
        seen[key] = vm_id
        ports = None
        if present and reference.get("ports") is not None:
            label = reference.get("name") or vm_id
            if not reference["ports"]:
                raise _arm.JitValidationError(f"ports of virtual machine {label} is empty: give at least one port rule, or omit it")
            ports = _jit.normalize_port_rules(reference["ports"], name=f"ports of virtual machine {label}")
        refs.append({"id": vm_id, "ports": ports})
    return refs, default_ports


@dataclass(frozen=True)
class PolicyOptions:
    """jit_policy's options, parsed and checked once; everything after reads only this."""

    present: bool
    policy_name: str
    refs: tuple
    """``({"id", "ports"}, ...)``: each VM's id and its own canonical port rules (or ``None``)."""
    default_ports: dict
    """Lower-case OS type (``ports_by_os_type``) or ``None`` (``ports``) -> canonical port rules."""
    purge: bool = False
    skip_unsupported: bool = False
    drift: str = "repair"
    update_existing: bool = True
    wait_timeout: int = DEFAULT_WAIT_TIMEOUT
    full_detail: bool = True
    enable_defender_for_servers: bool = False
    bastion: str | None = None
    """``auto`` or a Bastion host id: its subnet becomes every port's allowed source."""


def parse_options(params, subscription):
    """:class:`PolicyOptions` from the module's ``params``; raises :class:`_arm.JitValidationError`
    naming the first bad value (nothing has been read or written yet)."""
    policy_name = _validate_policy_name(params["policy_name"])
    refs, default_ports = validate_options(params, subscription)
    if params["wait_timeout"] < 0:
        raise _arm.JitValidationError(f"wait_timeout {params['wait_timeout']} is negative: allowed 0 or more seconds")
    present = params["state"] == "present"
    return PolicyOptions(
        present=present,
        policy_name=policy_name,
        refs=tuple(refs),
        default_ports=default_ports,
        purge=present and params["purge_virtual_machines"],
        skip_unsupported=params["skip_unsupported"],
        drift=params["drift"],
        update_existing=params["update_existing"],
        wait_timeout=params["wait_timeout"],
        full_detail=params["detail"] == "full",
        enable_defender_for_servers=present and params["enable_defender_for_servers"],
        bastion=_bastion.policy_bastion_option(params, subscription) if present else None,
    )


def _ports_by_os_type(value):
    """``{lower-case OS type: canonical port rules}`` from the ``ports_by_os_type`` option."""
    allowed = sorted(_jit.DEFAULT_PORTS_BY_OS)
    result = {}
    for os_type, rules in value.items():
        key = os_type.strip().lower() if isinstance(os_type, str) else None
        name = f"ports_by_os_type[{os_type!r}]"
        if key not in _jit.DEFAULT_PORTS_BY_OS:
            raise _arm.JitValidationError(f"ports_by_os_type has an unknown OS type {os_type!r}: allowed {', '.join(item.capitalize() for item in allowed)}")
        if key in result:
            raise _arm.JitValidationError(f"ports_by_os_type lists OS type {key.capitalize()} more than once: give it once")
        if not isinstance(rules, list) or not rules:
            raise _arm.JitValidationError(f"{name} must be a non-empty list of port rules, got {rules!r}")
        result[key] = _jit.normalize_port_rules(rules, name=name)
    return result


def resolve_targets(refs, topology, present=True, skip_unsupported=False):
    """Match validated refs to topology records.

    Returns ``(targets, skipped)``: targets are ``{"id", "location", "record", "ports"}`` (the
    record's id spelling, as Azure has it), skipped ``{"id", "name", "resource_group", "reason"}``.
    Unknown VMs, and (with ``present`` and not ``skip_unsupported``) unsupported VMs, raise.
    """
    unknown = [ref["id"] for ref in refs if _arm.normalize_id(ref["id"]) not in topology]
    if unknown:
        raise _arm.JitValidationError(not_found_message(unknown))
    targets, skipped, unsupported = [], [], []
    for ref in refs:
        record = topology[_arm.normalize_id(ref["id"])]
        if present and record.get("unsupported_reason"):
            if skip_unsupported:
                skipped.append({"id": record["id"], "name": record["name"], "resource_group": record["resource_group"], "reason": record["unsupported_reason"]})
            else:
                unsupported.append(f"{record['id']} ({record['unsupported_reason']})")
            continue
        targets.append({"id": record["id"], "location": record["location"], "record": record, "ports": ref["ports"]})
    if unsupported:
        raise _arm.JitValidationError(
            f"JIT cannot protect virtual machine(s): {'; '.join(unsupported)}. Add a network security group to a NIC or subnet, or set skip_unsupported: true"
        )
    return targets, skipped


def desired_entry(target, default_ports, bastion=None):
    """The REST policy entry wanted for a target VM: its override, else ``ports_by_os_type`` for its
    OS, else ``ports``, else the OS defaults (``default_ports`` as returned by validate_options);
    with a ``bastion`` (:class:`_bastion.Bastion`), its subnet is every port's allowed source."""
    os_type = target["record"].get("os_type")
    os_key = os_type.strip().lower() if isinstance(os_type, str) else None
    ports = target["ports"] or default_ports.get(os_key) or default_ports.get(None)
    if ports is None:
        try:
            ports = _jit.default_port_rules(os_type)
        except _arm.JitValidationError:
            raise _arm.JitValidationError(
                f"virtual machine {target['id']} has OS type {os_type!r}, which has no default JIT ports (Linux 22; Windows 3389, 5985, 5986): set ports"
            ) from None
    return _jit.build_policy_vm(target["id"], _bastion.with_sources(ports, bastion.prefixes) if bastion else ports)


def plan_entries(existing, desired, remove_ids, purge):
    """The VM list to write: ``desired`` merged into ``existing`` (or ``remove_ids`` taken out)."""
    if remove_ids:
        return _jit.remove_policy_vms(existing, remove_ids)
    return _jit.merge_policy_vms(existing, desired, purge=purge)


READ_ONLY_PROPERTIES = ("provisioningState",)


def policy_body(entries, current=None):
    """Body of a JIT policy PUT. The PUT replaces the whole policy, so everything the last GET
    returned that this run does not mean to change is sent back as it was: the policy's other
    properties (``requests``, and any this collection does not know), and its ``kind``."""
    current = current or {}
    properties = {key: value for key, value in (current.get("properties") or {}).items() if key not in READ_ONLY_PROPERTIES}
    properties["virtualMachines"] = list(entries)
    return {"kind": current.get("kind") or "Basic", "properties": properties}


def find_drift(entries, topology, nsgs):
    """JIT deny rules missing for a policy's VM entries: one item per (VM, NSG on its path, private
    IP) lacking a deny rule for some policy port - ``{vm_id, vm_name, nsg_id, private_ip,
    missing_ports}``. ``topology`` and ``nsgs`` are keyed by lower-cased id; VMs or NSGs not in
    them are not judged."""
    drift = []
    for entry in entries:
        record = topology.get(_arm.normalize_id(entry.get("id") or ""))
        if record is None:
            continue
        ports = sorted({_jit.canonical_port(port)["number"] for port in entry.get("ports") or []})
        for nsg_id, address in _nsg.path_pairs(record):
            nsg = nsgs.get(_arm.normalize_id(nsg_id))
            missing = _access.missing_deny_ports(nsg, address, ports) if nsg is not None else []
            if missing:
                drift.append({"vm_id": record["id"], "vm_name": record["name"], "nsg_id": nsg_id, "private_ip": address, "missing_ports": missing})
    return drift


def deny_rule_room(targets, nsgs):
    """Why NSGs on the targets' paths cannot take the JIT deny rules still missing there (one per
    VM and NSG): Azure's rule limit, or no free priority. ``[]`` when every NSG has room."""
    needed = {}
    for target in targets:
        for nsg_id, address in _nsg.path_pairs(target["record"]):
            nsg = nsgs.get(_arm.normalize_id(nsg_id))
            if nsg is not None and not _access.deny_rules(nsg, address):
                needed.setdefault(_arm.normalize_id(nsg_id), {})[target["id"]] = target["record"]["name"]
    problems = []
    for key, vms in needed.items():
        reason = _nsg.rule_room(nsgs[key], len(vms))
        if reason:
            name = nsgs[key].get("name") or key
            problems.append(f"NSG {name} cannot take the JIT deny rules of VM(s) {', '.join(sorted(vms.values()))}: {reason}")
    return problems


def describe_drift(drift):
    """``deny rules missing for web-1 port 22 on nsg-web (10.1.0.4), ...`` (one clause per item)."""
    return "deny rules missing for " + ", ".join(drift_lines(drift))


def drift_lines(drift):
    return [
        "%s port%s %s on %s (%s)"
        % (
            item["vm_name"],
            "s" if len(item["missing_ports"]) > 1 else "",
            ",".join(map(str, item["missing_ports"])),
            item["nsg_id"].rsplit("/", 1)[-1],
            item["private_ip"],
        )
        for item in drift
    ]


def _outcome(before, after, action, exists, *, changed=False, attempts=0, concurrent=(), drift=()):
    return {
        "before": before,
        "after": after,
        "action": action,
        "attempts": attempts,
        "changed": changed,
        "concurrent": list(concurrent),
        "exists": exists,
        "drift": list(drift),
    }


def keep_existing_entries(baseline, desired):
    """``desired`` with the entry of every VM already in the policy (``baseline``) as it is there."""
    return [_jit.find_policy_vm(baseline, entry["id"]) or entry for entry in desired]


def reconcile_policy(  # noqa: PLR0913 - the policy, the wanted state, the I/O and three switches
    key, desired, remove_ids, purge, api, *, check_mode, max_attempts=MAX_WRITE_ATTEMPTS, drift=None, repair=True, update_existing=True, sleep=time.sleep
):
    """Bring one policy to the desired state: one GET, a PUT/DELETE only when something differs,
    then a verifying GET; on a lost update re-merge on the fresh read and write again.

    ``api`` has ``get(key) -> policy dict or None``, ``put(key, body) -> policy dict`` and
    ``delete(key)``. ``drift(entries)`` (see :func:`find_drift`) finds deny rules another tool
    deleted: a policy whose entries are as asked but has drift is written again unchanged (Azure
    re-applies the deny rules of every entry on each write) when ``repair``, else only reported.
    Returns a dict with ``before`` and ``after`` entries, ``action``, ``attempts`` (writes made),
    ``changed``, ``concurrent`` (ids another writer removed) and ``drift`` (what was found missing).
    With ``update_existing`` false, VMs already in the policy keep their entry as it is. A write
    that ``api`` reports as :class:`TransientWriteError` is retried (up to
    :data:`MAX_TRANSIENT_RETRIES`) after ``sleep(delay)`` and a fresh read and merge.
    """
    requested = desired
    current = api.get(key)
    latest = current  # the last policy read: what a PUT must keep of it
    existed = current is not None
    before = _jit.policy_vm_entries(current)
    baseline = before
    desired = requested if update_existing else keep_existing_entries(baseline, requested)
    after = plan_entries(baseline, desired, remove_ids, purge)
    found = drift(baseline) if drift is not None and existed else []
    if _jit.policy_vms_equal(baseline, after):
        if not found or not repair:
            return _outcome(before, before, "unchanged", existed, drift=found)
        action = "repaired"
    else:
        action = ("updated" if existed else "created") if after else "deleted"
    if check_mode:
        return _outcome(before, after, action, bool(after), changed=True, drift=found)
    desired_ids = {_arm.normalize_id(entry["id"]) for entry in desired}
    concurrent = []
    attempts = transient = 0
    while True:
        preserved = [entry["id"] for entry in after if _arm.normalize_id(entry["id"]) not in desired_ids]
        removed = [entry["id"] for entry in baseline if not _jit.find_policy_vm(after, entry["id"])]
        try:
            if after:
                api.put(key, policy_body(after, latest))
            else:
                api.delete(key)
        except TransientWriteError as exc:
            # Never resend the same body later (the pipeline's own retry would): another writer may
            # have changed the policy meanwhile. Wait, read it again, merge again, write again.
            transient += 1
            if transient > MAX_TRANSIENT_RETRIES:
                raise
            sleep(exc.delay)
            latest = api.get(key)
            baseline = _jit.policy_vm_entries(latest)
            desired = requested if update_existing else keep_existing_entries(baseline, requested)
            after = plan_entries(baseline, desired, remove_ids, purge)
            if _jit.policy_vms_equal(baseline, after) and (action != "repaired" or not drift or not drift(baseline)):
                after = baseline  # as asked already (the failed write may have gone through)
                break
            continue
        attempts += 1
        read_back = api.get(key)
        result = _jit.verify_policy(_jit.policy_vm_entries(read_back), desired, preserved_ids=preserved, removed_ids=removed)
        if result.ok:
            after = _jit.policy_vm_entries(read_back)
            break
        # A concurrent writer replaced the list after our write (the JIT PUT has no ETag).
        concurrent = sorted(set(concurrent) | set(result.lost))
        latest = read_back
        baseline = _jit.policy_vm_entries(read_back)
        desired = requested if update_existing else keep_existing_entries(baseline, requested)
        after = plan_entries(baseline, desired, remove_ids, purge)
        if _jit.policy_vms_equal(baseline, after):  # our entries are as asked; only others' entries changed
            after = baseline
            break
        if attempts >= max_attempts:
            raise PolicyConvergenceError(
                f"JIT policy {_arm.policy_key_id(key)} did not converge after {attempts} writes: another writer kept replacing it"
                f" (VM entries not as asked: {', '.join(result.not_as_asked) or 'none'}; entries removed by the other writer:"
                f" {', '.join(result.lost) or 'none'}). Retry when the other writer is done"
            )
    return _outcome(before, after, action, bool(after), changed=True, attempts=attempts, concurrent=concurrent, drift=found)


def _snake_port(port):
    canonical = _jit.canonical_port(port)
    return {
        "number": canonical["number"],
        "protocol": canonical["protocol"],
        "allowed_source_address_prefixes": sorted(set(_jit.port_prefixes(canonical)), key=_jit.prefix_sort_key),
        "max_request_access_duration": canonical["maxRequestAccessDuration"],
    }


def returned_entries(entries):
    """Policy VM entries for the result: snake_case, ports canonical and sorted, ids as Azure has them."""
    return [{"id": entry.get("id"), "ports": [_snake_port(port) for port in _jit.normalize_policy_vm(entry)["ports"]]} for entry in entries]


# --------------------------------------------------------------------------------------------------
# Azure access


class PolicyApi:
    """GET/PUT/DELETE of JIT policies as REST JSON through :mod:`_api`: nothing dropped by model
    round-trips, and no model building (a 100-VM policy takes longer to deserialise than to fetch).

    An Azure error ends the module; the failure then reports ``policies``, the policies finished
    before it (``done``), and ``changed`` when any write had succeeded, so a failure on the second
    of several policies does not hide that the first was written.
    """

    def __init__(self, module, done=None):
        self.module = module
        self.done = [] if done is None else done
        self.writes = 0
        self.api = module.api
        self.delays = backoff_delays(first=2, steady_rounds=1, factor=2, maximum=30)
        self.answers = {}  # policy id (normalised) -> REST body or None: what the next get() returns
        self.defer_verification = False  # a write's read-back is its own answer; verify_batch() checks later
        self.raise_failures = False  # in worker threads: raise PolicyFailure, the main thread reports it
        self.lock = threading.Lock()  # writes and delays, shared by the worker threads

    def list_policies(self, subscriptions):
        """{policy id (normalised): REST body} of every JIT policy in ``subscriptions`` (one paged list each)."""
        try:
            return {_arm.normalize_id(policy.get("id") or ""): policy for policy in list_jit_policies(self.api, subscriptions)}
        except AzureError as exc:
            self.fail(exc, "list JIT network access policies")

    def preload(self, keys):
        """Answer the first get() of each policy in ``keys`` from one list per subscription."""
        listed = self.list_policies(sorted({key.subscription for key in keys}, key=str.lower))
        for key in keys:
            policy_id = _arm.normalize_id(_arm.policy_key_id(key))
            self.answers[policy_id] = listed.get(policy_id)

    def fail(self, exc, action):
        if self.raise_failures:
            raise PolicyFailure(exc, action)
        self.module.fail_azure(exc, action, changed=self.writes > 0, policies=self.done)

    def get(self, key):
        policy_id = _arm.policy_key_id(key)
        if _arm.normalize_id(policy_id) in self.answers:
            return self.answers.pop(_arm.normalize_id(policy_id))
        try:
            return self.api.get(policy_id, SECURITY_API_VERSION)
        except AzureError as exc:
            self.fail(exc, f"read JIT policy {policy_id}")

    def put(self, key, body):
        policy_id = _arm.policy_key_id(key)
        try:
            # No transparent retry: a resent body is stale (see reconcile_policy).
            written = self.api.put(policy_id, SECURITY_API_VERSION, body, retry=False)
        except AzureError as exc:
            self._transient_or_fail(exc, f"write JIT policy {policy_id}")
        with self.lock:
            self.writes += 1
            writes = self.writes
        self.module.progress("wrote JIT policy %s (%d write(s) so far)" % (policy_id, writes))
        if self.defer_verification:
            self.answers[_arm.normalize_id(policy_id)] = written
        return written

    def delete(self, key):
        try:
            self.api.delete(_arm.policy_key_id(key), SECURITY_API_VERSION, retry=False)
        except AzureError as exc:
            self._transient_or_fail(exc, f"delete JIT policy {_arm.policy_key_id(key)}")
        with self.lock:
            self.writes += 1
        if self.defer_verification:
            self.answers[_arm.normalize_id(_arm.policy_key_id(key))] = None

    def _transient_or_fail(self, exc, action):
        with self.lock:
            fallback = next(self.delays)
        delay = transient_delay(exc, fallback=fallback)
        if delay is None:
            self.fail(exc, action)
        self.module.warn(f"{action}: {describe_error(exc)}; reading the policy again and retrying in {delay:g} s")
        raise TransientWriteError(exc, delay)


def wait_for_deny_rules(module, repaired, topology, nsgs, policies, *, timeout, sleep=time.sleep, clock=time.monotonic):
    """After writing drifted policies again: poll the NSGs that missed deny rules until every one
    is back, for up to ``wait_timeout`` seconds (Defender applies a policy write asynchronously)."""
    api = module.api
    pending = [item for _policy_id, items in repaired for item in items]

    def deny_rules_back():
        nonlocal pending
        nsgs.update(read_nsgs(api, module.azure_call, [item["nsg_id"] for item in pending]))
        entries = [{"id": item["vm_id"], "ports": [{"number": port} for port in item["missing_ports"]]} for item in pending]
        pending = find_drift(entries, topology, nsgs)
        if pending:
            module.wait_progress("%d VM(s) still miss deny rules: %s" % (len(pending), describe_drift(pending)))
        return not pending

    if not wait_until(deny_rules_back, timeout, sleep=sleep, clock=clock):
        module.fail_json(
            msg=f"the JIT policies were written again, but after {timeout} s {describe_drift(pending)}"
            " (Defender for Cloud may still apply them; run again, or check that Defender for Servers Plan 2 is on)",
            changed=True,
            policies=policies,
            missing_deny_rules=pending,
        )


def enable_plans(module, groups):
    """With enable_defender_for_servers: turn on Defender for Servers Plan 2 (billed per server) on
    each subscription of ``groups`` that lacks it, before any policy write; the ids it enabled (or
    would enable, in check mode)."""
    enabled = []
    for subscription in sorted({key.subscription for key in groups}):
        pricing = module.azure_call("read the Defender for Servers plan of %s" % subscription, lambda s=subscription: read_servers_plan(module.api, s))
        plan = _jit.servers_plan(subscription, pricing)
        if plan["jit_available"]:
            continue
        if not module.check_mode:
            module.azure_call("enable Defender for Servers Plan 2 on %s" % subscription, lambda s=subscription: enable_servers_plan_2(module.api, s))
        enabled.append(subscription)
    return enabled


def policy_result(key, outcome):
    """One entry of the ``policies`` result."""
    return {
        "id": _arm.policy_key_id(key),
        "name": key.policy_name,
        "resource_group": key.resource_group,
        "location": key.location,
        "action": outcome["action"],
        "changed": outcome["changed"],
        "attempts": outcome["attempts"],
        "changes": _jit.summarize_policy_vm_changes(outcome["before"], outcome["after"]),
        "virtual_machine_count": len(outcome["after"]),
        "drift": outcome["drift"],
    }


class PolicyFailure(Exception):
    """An Azure error met in a worker thread; the main thread ends the module with it."""

    def __init__(self, error, action):
        super().__init__(action)
        self.error = error
        self.action = action


def verify_batch(api, plans, outcomes, policies, reconcile):
    """Check every policy written with deferred verification against one list per subscription;
    reconcile again, with a GET per read, each one another writer changed after our write."""
    written = [index for index, outcome in enumerate(outcomes) if outcome["attempts"]]
    if not written:
        return
    listed = api.list_policies(sorted({plans[index][0].subscription for index in written}, key=str.lower))
    for index in written:
        key, desired, removed = plans[index]
        outcome = outcomes[index]
        asked = {_arm.normalize_id(entry["id"]) for entry in desired}
        after_ids = {_arm.normalize_id(entry["id"]) for entry in outcome["after"]}
        result = _jit.verify_policy(
            _jit.policy_vm_entries(listed.get(_arm.normalize_id(_arm.policy_key_id(key)))),
            [entry for entry in outcome["after"] if _arm.normalize_id(entry["id"]) in asked],
            preserved_ids=[entry["id"] for entry in outcome["after"] if _arm.normalize_id(entry["id"]) not in asked],
            removed_ids=[entry["id"] for entry in outcome["before"] if _arm.normalize_id(entry["id"]) not in after_ids],
        )
        if result.ok:
            continue
        again = reconcile(key, desired, removed)
        merged = dict(again, before=outcome["before"], changed=True, drift=outcome["drift"])
        merged["attempts"] = outcome["attempts"] + again["attempts"]
        merged["concurrent"] = sorted(set(outcome["concurrent"]) | set(result.lost) | set(again["concurrent"]))
        merged["action"] = outcome["action"]
        outcomes[index] = merged
        policies[index] = policy_result(key, merged)


def run(module):
    """The module's work, once its options are known to Ansible."""
    error = None
    try:  # VMs given by id carry their own subscription
        options = parse_options(module.params, module.default_subscription_id)
    except _arm.JitValidationError as exc:
        error = str(exc)
    if error:  # failed outside the except block: no traceback attached to the result
        module.fail_json(msg=error, changed=False)
    present = options.present
    check_drift = present and options.drift != "ignore"
    # NSGs: for drift, and to know before writing that each can take its JIT deny rules.
    kinds = ("virtual_machines", "network_interfaces", "virtual_networks", "network_security_groups") if present else ("virtual_machines",)
    subscriptions = subscriptions_of([ref["id"] for ref in options.refs])
    reused = None
    if module.params["reuse_inventory"]:
        reused, why = load_inventory(module.params["reuse_inventory"], subscriptions, kinds)
        if why:
            module.warn("reuse_inventory: %s; listing the fleet again" % why)
    inventory = read_inventory(module.api, module.azure_call, kinds=kinds, subscriptions=subscriptions, reused=reused)
    module.progress(describe_inventory(inventory, subscriptions, reused))
    topology = build_topology(inventory)
    nsgs = nsgs_by_id(inventory)
    inventory.release("virtual_machines", "network_interfaces")  # in the topology now: free them
    try:
        targets, skipped = resolve_targets(options.refs, topology, present=present, skip_unsupported=options.skip_unsupported)
        groups = _jit.group_vms_by_policy(targets, policy_name=options.policy_name)
        # with bastion: VM id (lower) -> the Bastion whose subnet its ports allow
        hosts = _topology.resolve_bastions(module.api, module.azure_call, options.bastion, [target["record"] for target in targets], inventory)
        plans = []
        for key, members in groups.items():
            desired = [desired_entry(member, options.default_ports, hosts.get(_arm.normalize_id(member["id"]))) for member in members] if present else []
            remove_ids = [member["id"] for member in members] if not present else []
            plans.append((key, desired, remove_ids))
    except _arm.JitValidationError as exc:
        module.fail_json(msg=str(exc), changed=False)
    problems = deny_rule_room(targets, nsgs) if present else []
    if problems:
        module.fail_json(msg="%s. Nothing was written: make room in the NSG first (remove unused rules)" % "; ".join(problems), errors=problems, changed=False)

    enabled = enable_plans(module, groups) if present and options.enable_defender_for_servers else []
    policies, diffs = [], []
    api = PolicyApi(module, done=policies)
    drift = (lambda entries: find_drift(entries, topology, nsgs)) if check_drift else None

    def attempt(key, desired, remove_ids):
        return reconcile_policy(
            key,
            desired,
            remove_ids,
            options.purge,
            api,
            check_mode=module.check_mode,
            drift=drift,
            repair=options.drift == "repair",
            update_existing=options.update_existing,
        )

    def fail(exc, key):
        """End the module on a policy's error, reporting the policies written before it."""
        if isinstance(exc, PolicyConvergenceError):
            module.fail_json(msg=str(exc), changed=True, policies=policies, skipped_virtual_machines=skipped)
        if isinstance(exc, TransientWriteError):
            api.fail(exc.error, f"write JIT policy {_arm.policy_key_id(key)} ({MAX_TRANSIENT_RETRIES} retries)")
        if isinstance(exc, PolicyFailure):
            module.fail_azure(exc.error, exc.action, changed=api.writes > 0, policies=policies)
        raise exc

    def reconcile(key, desired, remove_ids):
        try:
            return attempt(key, desired, remove_ids)
        except (PolicyConvergenceError, TransientWriteError) as exc:
            fail(exc, key)

    if len(plans) >= BATCH_MIN_POLICIES:
        api.preload([plan[0] for plan in plans])
        api.defer_verification = not module.check_mode
    outcomes = []
    if not module.check_mode:
        module.progress("%d JIT polic%s to bring to the wanted state" % (len(plans), "y" if len(plans) == 1 else "ies"))
    if api.defer_verification:
        # A batch: each policy is one PUT (its read came from the list, its check comes after), so
        # the writes go side by side; an error is reported from here, after those in flight.
        api.raise_failures = True
        written, error = side_by_side(plans, attempt, WRITE_CONCURRENCY)
        api.raise_failures = False
        for (key, _desired, _removed), outcome in zip(plans, written, strict=True):
            if outcome is not None:
                outcomes.append(outcome)
                policies.append(policy_result(key, outcome))
        if error is not None:
            fail(error[1], plans[error[0]][0])
    else:
        for key, desired, remove_ids in plans:
            outcome = reconcile(key, desired, remove_ids)
            outcomes.append(outcome)
            policies.append(policy_result(key, outcome))  # what a failure on a later policy reports as done
    if api.defer_verification:
        api.defer_verification = False
        verify_batch(api, plans, outcomes, policies, reconcile)
    changed = False
    repaired = []  # (policy id, drift items) whose deny rules a write brings back
    for outcome, entry in zip(outcomes, policies, strict=True):
        policy_id = entry["id"]
        changed = changed or outcome["changed"]
        if outcome["drift"] and outcome["changed"] and outcome["after"]:
            repaired.append((policy_id, outcome["drift"]))
        elif outcome["drift"]:
            module.warn(f"JIT policy {policy_id}: {describe_drift(outcome['drift'])} (drift={options.drift}: not repaired)")
        if options.full_detail:
            entry["virtual_machines"] = returned_entries(outcome["after"])
        if outcome["attempts"] > 1:
            lost = ", ".join(outcome["concurrent"]) or "none"
            module.warn(f"JIT policy {policy_id}: another writer replaced it during this run; merged again and rewrote it (entries it removed: {lost})")
        if outcome["changed"]:
            diff = _jit.diff_policy_vms(outcome["before"], outcome["after"])
            before, after = {"virtual_machines": diff["before"]}, {"virtual_machines": diff["after"]}
            if outcome["drift"]:
                before["missing_deny_rules"], after["missing_deny_rules"] = drift_lines(outcome["drift"]), []
            diffs.append({"before_header": policy_id, "after_header": policy_id, "before": before, "after": after})
    if repaired and not module.check_mode:
        wait_for_deny_rules(module, repaired, topology, nsgs, policies, timeout=options.wait_timeout)
    result = {
        "changed": changed or bool(enabled),
        "defender_for_servers_enabled": enabled,
        "policies": policies,
        "skipped_virtual_machines": skipped,
        "repaired": [dict(item, policy_id=policy_id) for policy_id, items in repaired for item in items],
    }
    if module.diff_mode:
        result["diff"] = diffs
    module.exit_json(**result)


def main():
    module = AzureJitModule(ARGUMENT_SPEC, supports_check_mode=True)
    with module.failing_cleanly():
        run(module)


if __name__ == "__main__":
    main()

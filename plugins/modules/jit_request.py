#!/usr/bin/python
# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: jit_request
short_description: Open just-in-time VM access, wait until it works, and close it early
version_added: 0.1.0
description:
  - Requests Microsoft Defender for Cloud just-in-time (JIT) access to management ports of Azure
    virtual machines that are already under a JIT policy, and waits until the network security
    group (NSG) rules that admit the traffic really exist.
  - With O(state=present) the module makes B(one) C(initiate) call per JIT policy, covering every
    requested VM of that policy, then polls the NSGs on each VM's path (the NIC NSG and the subnet
    NSG) until the JIT allow rule for each port is on all of them. Defender for Cloud applies the
    rules asynchronously, usually within seconds but sometimes up to about two minutes.
  - The request is idempotent. When an active request already covers every VM and port for the
    same source until at least now + O(duration) - O(renew_margin), and its allow rules are on the
    VM's NSGs, nothing is initiated and C(changed) is V(false). O(force=true) re-initiates. A new
    request for a VM port supersedes the older one, which Azure marks C(Revoked) /
    C(NewerRequestInitiated).
  - With O(state=absent) the module closes access B(now), which no Azure tool offers. It deletes
    the JIT allow rules that admit the given ports (and sources, if given) to the VMs' private IP
    addresses on every NSG on their path and waits for the deletions. JIT deny rules and every
    non-JIT rule stay untouched. Azure keeps the request record with its original end time.
  - Every input is checked against the VM's JIT policy before the first write. A VM in no policy,
    a port the policy does not have, a duration above the policy's maximum, a source outside the
    policy's allowed prefixes, an IPv6 source, or a source meaning "anywhere" or broader than V(/8) without
    O(allow_any_source=true) fails with a message that names the value and what is allowed, and
    nothing is changed.
author:
  - jitaccess.azure contributors (@jitaccess)
extends_documentation_fragment:
  - jitaccess.azure._auth
  - jitaccess.azure._attributes
  - jitaccess.azure._attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: Reports what would be opened or closed; makes no write.
  diff_mode:
    support: full
    details: Shows each VM port as open or closed before and after.
  idempotent:
    support: full
    details:
      - With O(state=present), a second run inside the validity window reports no change, unless
        the remaining time falls below O(duration) - O(renew_margin) or O(force=true).
      - With O(state=absent), a second run finds nothing to close.
options:
  virtual_machines:
    description:
      - The VMs to open or close access to, in any resource groups and regions of the subscription.
      - Each entry names a VM by O(virtual_machines[].id), or by O(virtual_machines[].name) and
        O(virtual_machines[].resource_group).
    type: list
    elements: dict
    required: true
    suboptions:
      id:
        description:
          - Resource ID of the VM. Mutually exclusive with O(virtual_machines[].name) and
            O(virtual_machines[].resource_group).
        type: str
      name:
        description: Name of the VM.
        type: str
      resource_group:
        description: Resource group of the VM.
        type: str
      ports:
        description:
          - Ports for this VM only, overriding O(ports).
        type: list
        elements: int
  ports:
    description:
      - Port numbers to open or close on every VM that does not set its own
        O(virtual_machines[].ports).
      - With O(state=present) each port must be in the VM's JIT policy entry. The default is every
        port of that entry.
      - With O(state=absent) the default is every port JIT has opened to the VM.
    type: list
    elements: int
  source_address_prefixes:
    description:
      - The source of the access, an IPv4 address or CIDR such as V(203.0.113.7) or
        V(203.0.113.0/28). The JIT initiate API takes one source per port, so give at most one.
      - With O(state=present) and no value, the source is left out of the request and Defender for
        Cloud uses the public address the request comes from (the portal's "My IP"). The allow
        rule then admits the address of the machine that runs the module; delegate the task to
        the controller to get the controller's address.
      - The source must lie inside the allowed source prefixes of each port in the policy.
      - IPv6 is refused (the service rejects it). V(*), V(0.0.0.0/0), V(Internet), V(Any) and any
        prefix broader than V(/8) (more than 16,777,216 addresses, such as V(0.0.0.0/1)) are
        refused unless O(allow_any_source=true), because they admit a large part of the Internet.
      - With O(state=absent), only allow rules whose sources are all among these prefixes are
        deleted. The default is every allow rule for the port, whatever its source.
    type: list
    elements: str
  use_policy_source:
    description:
      - When O(source_address_prefixes) lies strictly inside one of a port's allowed source
        prefixes (V(10.1.2.3) in a policy allowing V(10.0.0.0/8)), request that allowed prefix
        instead. Azure may refuse a request whose source is not exactly one of the policy's
        prefixes ("not a subset of policy"), so without this option such a source fails before any
        write, naming the allowed prefixes. The prefix requested admits more than the source
        given; the result reports what was requested.
    type: bool
    default: false
    version_added: 0.2.0
  bastion:
    description:
      - Open access for Azure Bastion only - the common hardened set-up. The source of the request is
        the address prefix of a Bastion host's C(AzureBastionSubnet), resolved per VM, and admins
        connect through Bastion.
      - V(auto) picks, per VM, the Bastion host of the VM's own virtual network, else the one of a
        virtual network directly peered with it (peering state C(Connected)). A VM that no Bastion
        can reach, or that more than one can reach the same way, fails the task before anything
        is requested, naming the VM and the candidates.
      - A Bastion host may be named instead, by C(id) or by C(name) and C(resource_group) (in
        O(subscription_id)), or given as its resource id; it must exist and reach every VM named.
      - The policy must allow that prefix for each port (see
        P(jitaccess.azure.jit_policy#module)'s O(jitaccess.azure.jit_policy#module:bastion)). A
        Bastion subnet with several prefixes is refused (the initiate API takes one source).
      - Mutually exclusive with O(source_address_prefixes). Not used with O(state=absent), which
        closes the given ports whatever their source (name the prefix in O(source_address_prefixes)
        to close only Bastion's access).
      - Reads one list of Bastion hosts per subscription, only when set. Needs
        C(Microsoft.Network/bastionHosts/read).
    type: raw
    version_added: 0.2.0
  allow_any_source:
    description:
      - Allow O(source_address_prefixes) to mean "anywhere" (V(*), V(0.0.0.0/0), V(Internet) or
        V(Any)) or a large part of it (a prefix broader than V(/8)). The policy must allow the
        source for the port (V(*) allows anything).
    type: bool
    default: false
  duration:
    description:
      - How long access stays open. ISO 8601 (V(PT1H), V(PT90M)), short forms (V(1h), V(90m),
        V(1h30m), V(300s)) or a number of seconds.
      - At least 1 minute and at most the C(maxRequestAccessDuration) of each requested port in
        the VM's policy entry (the JIT maximum is 24 hours). Keep it short; closing early is the
        first guarantee, the duration the last.
    type: str
    default: PT1H
  justification:
    description:
      - Text recorded with the request in Azure, shown in the portal and the activity log.
      - The default names the user and host that run the module, for example
        V(Ansible jitaccess.azure.jit_request by deploy@ctl-01).
    type: str
  renew_margin:
    description:
      - An active request that ends within this margin of the end a new request would have is
        renewed instead of reused (see the idempotency description above).
      - Any O(duration) form. The default is the smaller of 10 minutes and half of O(duration).
    type: str
  lease:
    description:
      - Bound the exposure of a run that is killed outright (C(SIGKILL), a lost controller), which
        neither C(always) nor a callback can catch. Each request lasts only this long (the lease);
        the C(jitaccess.azure.jit_guard) callback renews it, while the run is alive, shortly before
        it ends (half the lease before, at most 3 minutes before), until O(duration) has passed or
        the run closes it. When the controller dies, the renewals stop and Azure ends the access
        within one lease.
      - Any O(duration) form, from 5 minutes to O(duration). For example V(10m) with
        O(duration=2h) keeps access for up to two hours with one renewal every 7 minutes.
      - Needs the C(jitaccess.azure.jit_guard) callback (the task fails before any write without
        it). The renewals use the source Azure recorded for the request, never the caller's
        address. Ignored with O(state=absent).
    type: str
    version_added: 0.2.0
  force:
    description:
      - With O(state=present), initiate a new request even when an active one already covers
        every VM and port.
    type: bool
    default: false
  wait:
    description:
      - With O(state=present), wait until the JIT allow rule for every requested VM port is on
        every NSG on the VM's path, reading each NSG once per polling round, with backoff up to 3 s
        (the reads of a round side by side; one GET per NSG for up to 10 NSGs, else one paged list
        per resource group for NSGs in up to 10 groups, else one per subscription).
      - With V(false) the module returns right after the C(initiate) call; the C(access) lists are
        then empty and C(open) is V(false) for the ports it initiated.
      - With O(state=absent) the deletions are always waited for.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for the allow rules. On timeout the module fails and names each VM, NSG
        and port still missing its rule. The request stays initiated.
    type: int
    default: 300
  state:
    description:
      - V(present) opens access (initiates JIT requests); V(absent) closes it now (deletes the
        JIT allow rules).
      - Closing a request initiated moments ago (less than two minutes, the time Defender for
        Cloud may take to apply it) whose allow rules are not on every NSG of the path yet, for
        example opened with O(wait=false), waits for those rules and deletes them as they appear
        (with O(wait=true), up to O(wait_timeout); the task fails naming what is still pending
        when the time runs out). It is never reported as not open while its rules may still come.
        With O(wait=false) such ports are reported as V(pending).
    type: str
    default: present
    choices: [present, absent]
  stale_only:
    description:
      - With O(state=absent), delete only I(stale) JIT allow rules - those that no active access
        request keeps (expired or revoked, yet still in the NSG and still admitting traffic) - and
        leave access that is in use. M(jitaccess.azure.nsg_jit_facts) lists them as stale rules.
      - Ignored with O(state=present).
    type: bool
    default: false
    version_added: 0.2.0
notes:
  - "RBAC to open: C(Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action),
    C(Microsoft.Security/locations/jitNetworkAccessPolicies/*/read),
    C(Microsoft.Compute/virtualMachines/read), C(Microsoft.Network/networkInterfaces/*/read),
    C(Microsoft.Network/publicIPAddresses/read), C(Microsoft.Network/virtualNetworks/read) and
    C(Microsoft.Network/networkSecurityGroups/read) (to wait for the rules)."
  - "RBAC to close early: additionally C(Microsoft.Network/networkSecurityGroups/securityRules/delete).
    The collection ships a least-privilege role definition, C(docs/rbac/jit-request-and-close.json)."
  - Defender for Cloud writes the allow rules asynchronously after the C(initiate) call (the apply
    delay, from seconds up to about two minutes). With O(wait=true) the module returns only
    once the rules exist, so the next task can connect.
  - Closing early deletes the allow rules, so traffic is blocked again by the JIT deny rule. Azure
    has no API to revoke a request; its record keeps the status C(Initiated) and its original end
    time, and the portal keeps showing it until then. This module therefore checks the NSGs, not
    only the request record, before it reports access as already open.
  - Reads are bulk, whatever the number of VMs. One paged list call each for VMs, NICs, NSGs,
    virtual networks, public IP addresses and JIT policies, then one C(initiate) per policy.
    While waiting, each NSG still missing a rule is read once per round - with one GET each when
    there are up to 10 of them, else with one paged list of the subscription's NSGs.
  - JIT requires Microsoft Defender for Servers Plan 2 on the subscription. VMs must be put under
    JIT first, with M(jitaccess.azure.jit_policy).
  - For play-wide access with a guaranteed close, see the C(jitaccess.azure.jit_access) role and
    the C(jitaccess.azure.jit_guard) callback, which closes what this module opened when a run
    ends, even on failure or interruption. The callback reads the RV(opened) return value.
  - When the C(jitaccess.azure.jit_guard) callback is enabled, it sets E(JITACCESS_GUARD_RECORD) in
    the controller; right after each successful C(initiate) and before waiting, this module appends
    what it opened (the RV(opened) items and the non-secret authentication options, never a
    secret) to that file, so that the callback can also close access whose task never returned
    (Ctrl-C or SIGTERM while waiting). Failing to write the record is only a warning.
seealso:
  - module: jitaccess.azure.jit_policy
  - module: jitaccess.azure.nsg_jit_facts
  - name: Microsoft Defender for Cloud just-in-time VM access
    description: How JIT works, and what it requires.
    link: https://learn.microsoft.com/azure/defender-for-cloud/just-in-time-access-usage
"""

EXAMPLES = r"""
- name: Open SSH on two VMs for 30 minutes from the controller's public address
  jitaccess.azure.jit_request:
    virtual_machines:
      - name: web-1
        resource_group: rg-web
      - id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-db/providers/Microsoft.Compute/virtualMachines/db-1
    ports: [22]
    duration: 30m
  delegate_to: localhost
  run_once: true

- name: Open, configure, and always close (the pattern)
  block:
    - name: Open SSH for the build agent's egress address
      jitaccess.azure.jit_request:
        virtual_machines:
          - {name: web-1, resource_group: rg-web}
        ports: [22]
        source_address_prefixes: [203.0.113.7]
        duration: 1h
        justification: "Change CHG-1234: patch web tier"
      delegate_to: localhost
      register: jit

    - name: Configure the VM
      ansible.builtin.command: /usr/bin/true
      changed_when: false

  always:
    - name: Close access now, whatever happened
      jitaccess.azure.jit_request:
        virtual_machines:
          - {name: web-1, resource_group: rg-web}
        ports: [22]
        source_address_prefixes: [203.0.113.7]
        state: absent
      delegate_to: localhost

- name: Open WinRM on one VM and RDP on another in one request per policy
  jitaccess.azure.jit_request:
    virtual_machines:
      - {name: win-1, resource_group: rg-win, ports: [5986]}
      - {name: win-2, resource_group: rg-win, ports: [3389]}
    source_address_prefixes: [198.51.100.0/28]
    duration: PT2H
    wait_timeout: 600

- name: Open access for the Azure Bastion of each VM's network (or of its peered hub) only
  jitaccess.azure.jit_request:
    virtual_machines:
      - {name: other-2, resource_group: rg-web}
    bastion: auto
    duration: 30m

- name: What would be opened (check mode)
  jitaccess.azure.jit_request:
    virtual_machines:
      - {name: web-1, resource_group: rg-web}
  check_mode: true
  register: plan

- name: Close every JIT access to a VM, whatever the port or source
  jitaccess.azure.jit_request:
    virtual_machines:
      - {name: db-1, resource_group: rg-db}
    state: absent
"""

RETURN = r"""
virtual_machines:
  description: One entry per requested VM, in input order.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Resource ID of the VM.
      type: str
      sample: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/web-1
    name:
      description: Name of the VM.
      type: str
      sample: web-1
    resource_group:
      description: Resource group of the VM.
      type: str
      sample: rg-web
    policy_id:
      description: ID of the JIT policy that holds the VM (V(null) if none, possible only with O(state=absent)).
      type: str
      sample: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default
    private_ips:
      description: Private IP addresses of the VM's NICs (the destinations of the allow rules).
      type: list
      elements: str
      sample: [10.1.0.4]
    public_ips:
      description: Public IP addresses of the VM's NICs.
      type: list
      elements: str
      sample: [20.50.0.11]
    ports:
      description: One entry per requested port.
      type: list
      elements: dict
      contains:
        number:
          description: The port.
          type: int
          sample: 22
        source:
          description:
            - The source the access is for, as Azure recorded it or as the allow rules show it.
            - V(null) when the service picks the caller's address and it is not known yet
              (O(wait=false) or check mode).
          type: str
          sample: 203.0.113.7
        end_time_utc:
          description: When Azure ends the access (its request record). V(null) when nothing is open.
          type: str
          sample: "2026-11-21T11:00:00Z"
        status:
          description:
            - Status of the JIT request in Azure (V(Initiated), V(Revoked)...), V(null) when there
              is none.
            - After O(state=absent) it stays V(Initiated) until the original end time, because no
              Azure API revokes a request; RV(virtual_machines[].ports[].open) says what counts.
          type: str
          sample: Initiated
        open:
          description: Whether allow rules for the port are on every NSG on the VM's path now.
          type: bool
          sample: true
        action:
          description:
            - What this run did for the port. V(opened), V(already_open), V(closed),
              V(not_open) (nothing to close), V(pending) (closing, with O(wait=false) or in check
              mode, a request initiated moments ago whose allow rules are not on every NSG yet; see
              O(state)), or, in check mode, V(would_open) or V(would_close).
          type: str
          sample: opened
        access:
          description:
            - The JIT allow rules that admit the port to the VM, one per NSG on the path.
            - With O(state=absent) the rules that were deleted.
          type: list
          elements: dict
          contains:
            id:
              description: Resource ID of the security rule.
              type: str
              sample: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web/securityRules/MicrosoftDefenderForCloud-JITRule-1205477925-3E6A7DE4D4F44F73A5AB0D38C7F8B1B2
            nsg_id:
              description: Resource ID of the NSG.
              type: str
              sample: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web
            name:
              description: Name of the rule.
              type: str
              sample: MicrosoftDefenderForCloud-JITRule-1205477925-3E6A7DE4D4F44F73A5AB0D38C7F8B1B2
            priority:
              description: Priority of the rule.
              type: int
              sample: 100
            source_address_prefixes:
              description: Sources the rule admits.
              type: list
              elements: str
              sample: [203.0.113.7]
            destination_address_prefixes:
              description: Destinations of the rule.
              type: list
              elements: str
              sample: [10.1.0.4]
expires_at:
  description: The earliest end time of the open access returned; V(null) when nothing is open.
  returned: always
  type: str
  sample: "2026-11-21T11:00:00Z"
opened:
  description:
    - What this run opened (one item per VM port it initiated; empty when nothing was initiated).
    - Self-contained so that it can be closed later. The C(jitaccess.azure.jit_guard) callback
      uses it to close access at the end of a run.
    - In check mode, what would be opened (without NSG rules).
    - Also returned when the module fails after an C(initiate) succeeded (a later policy's
      C(initiate) failed, or O(wait_timeout) expired), because that access is live.
    - The same items are recorded for the C(jitaccess.azure.jit_guard) callback right after each
      C(initiate), before waiting, when E(JITACCESS_GUARD_RECORD) is set.
  returned: always
  type: list
  elements: dict
  contains:
    vm_id:
      description: Resource ID of the VM.
      type: str
      sample: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/web-1
    vm_name:
      description: Name of the VM.
      type: str
      sample: web-1
    port:
      description: The port.
      type: int
      sample: 22
    source:
      description: The source requested or recorded (V(null) when the service's choice is not known).
      type: str
      sample: 203.0.113.7
    policy_id:
      description: ID of the JIT policy the request was made on.
      type: str
      sample: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default
    end_time_utc:
      description: When Azure ends the access (with O(lease), the end of the first lease).
      type: str
      sample: "2026-11-21T11:00:00Z"
    lease:
      description: Seconds of the lease, with O(lease); jit_guard renews the access until RV(opened[].access_until).
      type: int
      returned: with O(lease)
      sample: 600
      version_added: 0.2.0
    access_until:
      description: With O(lease), the end of the access asked for (start plus O(duration)); no renewal goes past it.
      type: str
      returned: with O(lease)
      sample: "2026-11-21T12:00:00Z"
      version_added: 0.2.0
    private_ips:
      description: Destinations of the allow rules.
      type: list
      elements: str
      sample: [10.1.0.4]
    nsg_ids:
      description: Every NSG on the VM's path (where the allow rules go).
      type: list
      elements: str
      sample:
        - /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web
    nsg_rules:
      description: The allow rules found after waiting (empty with O(wait=false)).
      type: list
      elements: dict
      sample:
        - id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web/securityRules/MicrosoftDefenderForCloud-JITRule-1205477925-3E6A7DE4D4F44F73A5AB0D38C7F8B1B2
          nsg_id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web
          name: MicrosoftDefenderForCloud-JITRule-1205477925-3E6A7DE4D4F44F73A5AB0D38C7F8B1B2
closed:
  description:
    - What this run closed (one item per VM port whose allow rules it deleted). In check mode,
      what would be closed.
  returned: always
  type: list
  elements: dict
  contains:
    vm_id:
      description: Resource ID of the VM.
      type: str
      sample: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/web-1
    vm_name:
      description: Name of the VM.
      type: str
      sample: web-1
    port:
      description: The port.
      type: int
      sample: 22
    source:
      description: Source of the deleted rules (several joined with a comma).
      type: str
      sample: 203.0.113.7
    policy_id:
      description: ID of the VM's JIT policy (V(null) if it is in none).
      type: str
      sample: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default
    nsg_rules:
      description: The deleted rules (C(id), C(nsg_id), C(name)).
      type: list
      elements: dict
      sample:
        - id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web/securityRules/MicrosoftDefenderForCloud-JITRule-1205477925-3E6A7DE4D4F44F73A5AB0D38C7F8B1B2
          nsg_id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web
          name: MicrosoftDefenderForCloud-JITRule-1205477925-3E6A7DE4D4F44F73A5AB0D38C7F8B1B2
still_open:
  description:
    - When closing fails (O(state=absent)), the JIT allow rules that are still there and admit
      traffic, one per NSG. A failed deletion does not stop the others; C(deleted_rules) lists
      those that were removed.
  returned: failure while closing
  type: list
  elements: dict
  sample:
    - vm_name: web-1
      nsg_id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web
      name: MicrosoftDefenderForCloud-JITRule-1205477925-3E6A7DE4D4F44F73A5AB0D38C7F8B1B2
initiated:
  description: The C(initiate) calls made (or, in check mode, that would be made), one per policy.
  returned: always
  type: list
  elements: dict
  sample:
    - policy_id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default
      virtual_machines: 2
      justification: Ansible jitaccess.azure.jit_request by deploy@ctl-01
"""  # noqa: E501

import os  # noqa: E402
from collections import OrderedDict  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402

from ansible_collections.jitaccess.azure.plugins.module_utils import _access, _arm, _close, _jit, _nsg, _request, _topology  # noqa: E402
from ansible_collections.jitaccess.azure.plugins.module_utils._api import initiate_jit_request, list_jit_policies  # noqa: E402
from ansible_collections.jitaccess.azure.plugins.module_utils._arm import describe_error, error_details  # noqa: E402
from ansible_collections.jitaccess.azure.plugins.module_utils._auth import NON_SECRET_AUTH_KEYS  # noqa: E402
from ansible_collections.jitaccess.azure.plugins.module_utils._guard_record import (  # noqa: E402
    RECORD_VARIABLE,
    closed_items,
    read_closed,
    run_has_ended,
    withdrawn_items,
    write_guard_record,
)
from ansible_collections.jitaccess.azure.plugins.module_utils._module import AzureError, AzureJitModule, vm_references  # noqa: E402
from ansible_collections.jitaccess.azure.plugins.module_utils._parallel import side_by_side  # noqa: E402
from ansible_collections.jitaccess.azure.plugins.module_utils._request import PortResult  # noqa: E402
from ansible_collections.jitaccess.azure.plugins.module_utils._topology import (  # noqa: E402
    build_topology,
    describe_inventory,
    nsgs_by_id,
    read_inventory,
    subscriptions_of,
)
from ansible_collections.jitaccess.azure.plugins.module_utils._wait import DEFAULT_WAIT_TIMEOUT, wait_until  # noqa: E402

_UTC = timezone.utc  # noqa: UP017 - keep the module importable on older Pythons

ACTION_OPENED = "opened"
ACTION_ALREADY_OPEN = "already_open"
ACTION_WOULD_OPEN = "would_open"
ACTION_CLOSED = "closed"
ACTION_WOULD_CLOSE = "would_close"
ACTION_NOT_OPEN = "not_open"
ACTION_PENDING = "pending"

POLICY_HINT = "put it under JIT with jitaccess.azure.jit_policy first"

INITIATE_CONCURRENCY = 8
"""Initiates (one per JIT policy) in flight at once: each takes about a second on Azure, and ARM
refills 10 writes/s per subscription (eight in flight stay under it)."""
REFUSALS = frozenset((400, 401, 403, 404, 422))
"""Final answers to an initiate that mean Azure created no request (not 408, 409 or 429, which may
follow an earlier attempt that did): only those withdraw what was recorded for jit_guard."""

ARGUMENT_SPEC = dict(
    virtual_machines=vm_references(ports=dict(type="list", elements="int")),
    ports=dict(type="list", elements="int"),
    source_address_prefixes=dict(type="list", elements="str"),
    allow_any_source=dict(type="bool", default=False),
    duration=dict(type="str", default=_request.DEFAULT_REQUEST_DURATION),
    justification=dict(type="str"),
    renew_margin=dict(type="str"),
    lease=dict(type="str"),
    use_policy_source=dict(type="bool", default=False),
    force=dict(type="bool", default=False),
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=DEFAULT_WAIT_TIMEOUT),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    stale_only=dict(type="bool", default=False),
    bastion=dict(type="raw"),
)


# --------------------------------------------------------------------------------------------------
# The module


class JitRequest:
    def __init__(self, module):
        self.module = module
        self.changed = False
        self.results = []
        self.opened = []
        self.closed = []
        self.initiated = []
        self.diff = {"before": {}, "after": {}}
        try:
            self.options = _request.parse_request_options(module.params)
        except _arm.JitValidationError as exc:
            error = str(exc)
        else:
            error = None
        if error is None and self.options.lease and not os.environ.get(RECORD_VARIABLE):
            error = (
                "lease needs the jitaccess.azure.jit_guard callback, which renews the lease while the run is alive:"
                " enable it (callbacks_enabled = jitaccess.azure.jit_guard in ansible.cfg) or remove lease. Nothing was requested"
            )
        if error:  # failed outside the except block: no traceback attached to the result
            module.fail_json(msg=error)

    # -- reads -------------------------------------------------------------------------------
    def call(self, action, function, *args, **kwargs):
        return self.module.azure_call(action, function, *args, **kwargs)

    def read_state(self):
        api = self.module.api
        self.subscription_id = self.module.default_subscription_id
        references = [target.reference for target in self.options.targets]
        error = None
        try:  # every VM's subscription, from its id (or the configured one), before any read
            subscriptions = subscriptions_of([_arm.vm_id_from_reference(ref, self.subscription_id) for ref in references])
        except _arm.JitValidationError as exc:
            error = str(exc)
        if error:
            self.module.fail_json(msg=error)
        with ThreadPoolExecutor(max_workers=1) as pool:  # the JIT policies are listed beside the fleet
            listing = pool.submit(list_jit_policies, api, subscriptions)
            self.inventory = read_inventory(api, self.call, subscriptions=subscriptions)
            self.policies = self.call("list JIT policies", listing.result)
        self.module.progress(describe_inventory(self.inventory, subscriptions))
        self.topology = build_topology(self.inventory)
        self.nsgs = nsgs_by_id(self.inventory)
        self.inventory.release("virtual_machines", "network_interfaces", "public_ip_addresses")  # in the topology now
        resolved = None
        try:
            # with bastion: VM id (lower) -> the source its Bastion's subnet gives
            resolved, self.bastion_sources = _topology.vms_and_sources(api, self.call, references, self.topology, self.inventory, bastion=self.options.bastion)
        except _arm.JitValidationError as exc:
            error = str(exc)
        if error:
            self.module.fail_json(msg=error)
        self.vms = [(target, record) for target, (_reference, record) in zip(self.options.targets, resolved, strict=True)]
        self.policy_index = _jit.index_policies(self.policies)
        # ARM's clock (the Date of its latest answer) judges request end times, not the controller's.
        self.now = _request.server_time(api.server_date, datetime.now(_UTC))

    # -- present -----------------------------------------------------------------------------
    def plan_open(self):
        """Validate every VM and port against its policy; return the per-VM plans (no writes)."""
        options = self.options
        plans, errors = [], []
        for target, record in self.vms:
            label = record["name"]
            candidates = self.policy_index.get(_arm.normalize_id(record["id"]), [])
            if not candidates:
                errors.append("VM %s (%s) is in no JIT policy: %s" % (label, record["id"], POLICY_HINT))
                continue
            if record.get("unsupported_reason"):
                errors.append("VM %s cannot get JIT access: %s" % (label, record["unsupported_reason"]))
                continue
            policy, entry = _request.choose_policy(candidates, record)
            try:
                initiate_ports = _request.build_initiate_ports(
                    entry,
                    options.duration,
                    ports=options.ports_for(target),
                    sources=self.bastion_sources.get(_arm.normalize_id(record["id"]), options.sources),
                    vm_label=label,
                    now=self.now,
                    shown=options.duration_text,
                    use_policy_source=options.use_policy_source,
                )
            except _arm.JitValidationError as exc:
                errors.append(str(exc))
                continue
            if options.lease:  # the duration was checked against the policy; the request lasts one lease
                lease_end = _arm.format_azure_datetime(_arm.parse_azure_datetime(self.now) + timedelta(seconds=options.lease))
                initiate_ports = [dict(port, endTimeUtc=lease_end) for port in initiate_ports]
            plans.append({"record": record, "policy": policy, "entry": entry, "ports": initiate_ports, "paths": _nsg.path_pairs(record)})
        if errors:
            self.module.fail_json(msg="; ".join(errors), errors=errors)
        return plans

    def my_identities(self):
        if not hasattr(self, "_identities"):
            self._identities = []
            api = self.module.api
            try:
                token = api.credential.get_token(*api.cloud.credential_scopes).token
                self._identities = _request.token_identities(token)
            except Exception:  # pylint: disable=broad-except  # identity is a best effort: no match means re-initiate
                self._identities = []
        return self._identities

    @staticmethod
    def port_sources(port):
        """The sources an initiate port asks for (the user's, or the policy's prefix with
        use_policy_source); ``None``: the caller's address."""
        source = port.get("allowedSourceAddressPrefix")
        return (source,) if source else None

    def covered(self, plan, port, active):
        """(covered, access) for one VM port: an active request long enough whose rules are on every NSG."""
        options = self.options
        needed = _request.needed_end_time(self.now, options.request_seconds, options.renew_margin)
        wanted = self.port_sources(port)
        if wanted is not None:
            ok = _request.request_covers(active, wanted, needed)
        else:
            ok = any(_request.request_covers(active, None, needed, requestor=name) for name in self.my_identities())
        if not ok:
            return False, None
        number = port["number"]
        sources = active.sources or wanted
        access, missing = _access.access_on_path(plan["paths"], self.nsgs, number, sources)
        return not missing, access

    def run_present(self):
        options = self.options
        plans = self.plan_open()
        by_policy = OrderedDict()
        port_results = {}
        for plan in plans:
            record = plan["record"]
            active_map = _request.active_requests(plan["policy"], self.now)
            to_open = []
            for port in plan["ports"]:
                number = port["number"]
                active = active_map.get((_arm.normalize_id(record["id"]), number))
                covered, access = (False, None) if options.force else self.covered(plan, port, active)
                if covered:
                    port_results[(record["id"], number)] = self._port_result(number, active, ACTION_ALREADY_OPEN, access, open_=True)
                else:
                    to_open.append(port)
                self.diff["before"]["%s:%s" % (record["name"], number)] = self._diff_line(active, covered)
            if to_open:
                by_policy.setdefault(plan["policy"]["id"], []).append((plan, to_open))

        self.check_room(by_policy)
        for policy_id, items in by_policy.items():
            self.initiated.append({"policy_id": policy_id, "virtual_machines": len(items), "justification": options.justification})
        self.changed = bool(by_policy)

        if self.module.check_mode or not by_policy:
            for items in by_policy.values():
                for plan, ports in items:
                    for port in ports:
                        port_results[(plan["record"]["id"], port["number"])] = PortResult(
                            port["number"], ACTION_WOULD_OPEN, source=port.get("allowedSourceAddressPrefix"), end_time_utc=port.get("endTimeUtc")
                        )
                        self.opened.append(self._opened_item(plan, port, port.get("allowedSourceAddressPrefix"), []))
            return self._finish_present(plans, port_results)

        # Rules for these ports already on the path (older requests) do not prove the new one applied.
        waits = []
        for items in by_policy.values():
            for plan, ports in items:
                for port in ports:
                    exclude = _access.baseline_fingerprints(plan["paths"], self.nsgs, port["number"])
                    waits.append({"plan": plan, "port": port, "sources": self.port_sources(port), "exclude": exclude})

        self.initiate_all(by_policy, waits)

        if options.wait:
            self.wait_for_rules(waits)
        self.opened = []
        for item in waits:
            plan, port = item["plan"], item["port"]
            access = item.get("access") or []
            source = _access.joined(item["sources"] or (access[0]["source_address_prefixes"] if access else None))
            port_results[(plan["record"]["id"], port["number"])] = PortResult(
                port["number"],
                ACTION_OPENED,
                source=source,
                end_time_utc=port.get("endTimeUtc"),
                status=_request.REQUEST_STATUS_INITIATED,
                open=bool(access),
                access=access,
            )
            self.opened.append(self._opened_item(plan, port, source, access))
        return self._finish_present(plans, port_results)

    def initiate_all(self, by_policy, waits):
        """One initiate per policy, up to :data:`INITIATE_CONCURRENCY` at once. Each accepted request
        is recorded for jit_guard as soon as Azure answers it. After a refusal no further initiate
        starts; those in flight finish and are reported, then the module fails naming the refusal.

        The VM ports whose source is known are recorded before any POST: a run interrupted while
        Azure holds a request whose answer has not come back yet still closes what it may open
        (jit_guard waits for those rules). What was not initiated after all is withdrawn."""
        justification = self.options.justification
        jobs = [
            (policy_id, _request.build_initiate_body([(plan["record"]["id"], ports) for plan, ports in items], justification))
            for policy_id, items in by_policy.items()
        ]
        prerecorded = [item for item in waits if item["sources"] is not None]
        attempt = os.urandom(8).hex()  # names these lines, so that a withdrawal takes back only them
        self.record_for_guard(
            [dict(self._opened_item(item["plan"], item["port"], _access.joined(item["sources"]), []), attempt=attempt) for item in prerecorded]
        )
        record = os.environ.get(RECORD_VARIABLE)
        if run_has_ended(record):  # this task outlived its run: nothing would close what it opened now
            self.module.fail_json(msg="the run that started this task has ended (jit_guard's record %s is gone): nothing was requested" % record)
        not_opened = set()  # policies whose initiate never started, or that Azure answered with a refusal
        try:
            self._initiate_jobs(jobs, waits, not_opened)
        finally:  # also when the module fails: withdraw what surely did not open (never what may have)
            withdrawn = [
                {"vm_id": item["plan"]["record"]["id"], "port": item["port"]["number"]} for item in prerecorded if item["plan"]["policy"]["id"] in not_opened
            ]
            self.record_for_guard(withdrawn_items(withdrawn, attempt))

    def _initiate_jobs(self, jobs, waits, not_opened):
        api = self.module.api
        not_opened.update(policy_id for policy_id, _body in jobs)

        def initiate(policy_id, body):
            refused = False
            try:
                return initiate_jit_request(api, policy_id, body)
            except AzureError as exc:
                refused = getattr(exc, "status_code", None) in REFUSALS
                raise
            finally:
                if not refused:  # answered, or a timeout, a 5xx...: it may have opened
                    not_opened.discard(policy_id)

        _responses, refused = side_by_side(
            jobs,
            initiate,
            INITIATE_CONCURRENCY,
            on_result=lambda index, response: self.accepted(jobs[index][0], response, waits),
        )
        if refused is not None:
            # What the other policies opened is live: report it so that it can be closed (jit_guard).
            policy_id, exc = jobs[refused[0]][0], refused[1]
            if not isinstance(exc, AzureError):
                raise exc
            action = "initiate JIT request on policy %s" % policy_id
            self.module.fail_azure(exc, action, changed=bool(self.opened), opened=self.opened, initiated=self.initiated)

    def accepted(self, policy_id, response, waits):
        """Note what the initiate on ``policy_id`` opened, and record it for jit_guard (before waiting:
        if the run is interrupted now, jit_guard still knows what to close)."""
        recorded = _request.recorded_sources(response)
        fresh, unrecorded = [], []
        for item in waits:
            if item["plan"]["policy"]["id"] == policy_id:
                known = item["sources"] is not None  # then recorded before the initiate
                if not known:
                    item["sources"] = recorded.get((_arm.normalize_id(item["plan"]["record"]["id"]), item["port"]["number"]))
                fresh.append(self._opened_item(item["plan"], item["port"], _access.joined(item["sources"]), []))
                if not known:
                    unrecorded.append(fresh[-1])
        self.opened.extend(fresh)
        self.record_for_guard(unrecorded)
        self.module.progress("initiated a JIT request on policy %s: %d VM port(s)" % (_request.policy_label(policy_id), len(fresh)))

    def check_room(self, by_policy):
        """Fail before any write when an NSG on a path cannot take the allow rules a request adds
        (Azure's rule limit, or no free priority): Defender would never apply them."""
        requested = [(plan["paths"], plan["record"]["id"], [port["number"] for port in ports]) for items in by_policy.values() for plan, ports in items]
        problems = _access.allow_rule_room(requested, self.nsgs)
        if problems:
            self.module.fail_json(msg="%s. Nothing was requested: make room in the NSG first (remove unused rules)" % "; ".join(problems), errors=problems)

    def record_for_guard(self, items):
        """Append ``items`` (``opened`` entries) to the jit_guard record file, when there is one."""
        path = os.environ.get(RECORD_VARIABLE)
        if not path or not items:
            return
        params = self.module.params
        auth = {key: params.get(key) for key in NON_SECRET_AUTH_KEYS if params.get(key) not in (None, "")}
        error = write_guard_record(path, items, auth)
        if error:
            self.module.warn("could not record the opened access for jit_guard in %s: %s" % (path, error))

    def read_nsgs(self, nsg_ids):
        """``{lower id: NSG}`` for ``nsg_ids`` (ids, repeats allowed: :func:`_topology.read_nsgs`). On an error the module
        fails reporting what it opened."""

        def call(action, function):
            try:
                return function()
            except AzureError as exc:
                # The requests are initiated: report them so that they can be closed (jit_guard).
                self.module.fail_azure(exc, action, changed=True, opened=self.opened, initiated=self.initiated)

        return _topology.read_nsgs(self.module.api, call, nsg_ids)

    def wait_for_rules(self, waits):
        """Poll the NSGs on the path until each initiated VM port has its allow rule on all of them."""
        pending = list(waits)
        total = len(pending)

        def all_applied():
            nonlocal pending
            nsgs = self.read_nsgs([nsg_id for item in pending for nsg_id, _ip in item["plan"]["paths"]])
            still = []
            for item in pending:
                sources = item["sources"] if item["sources"] and len(item["sources"]) == 1 else None
                access, missing = _access.access_on_path(item["plan"]["paths"], nsgs, item["port"]["number"], sources, exclude=item["exclude"])
                if missing:
                    item["missing"] = missing
                    still.append(item)
                else:
                    item["access"] = access
            pending = still
            if pending:
                names = ", ".join("%s:%s" % (item["plan"]["record"]["name"], item["port"]["number"]) for item in pending[:5])
                more = " and %d more" % (len(pending) - 5) if len(pending) > 5 else ""
                self.module.wait_progress("allow rules applied for %d of %d port(s); waiting for %s%s" % (total - len(pending), total, names, more))
            return not pending

        if wait_until(all_applied, self.options.wait_timeout):
            return
        missing = [(item["plan"]["record"]["name"], item["port"]["number"], nsg_id, ip) for item in pending for nsg_id, ip in item["missing"]]
        names = {_arm.normalize_id(item[2]): _access.nsg_name(item[2]) for item in missing}
        self.module.fail_json(
            msg="timed out after %s s waiting for the JIT allow rules (the request was initiated; Defender for Cloud may still apply it): missing %s"
            % (self.options.wait_timeout, _access.format_missing(missing, names)),
            changed=True,
            initiated=self.initiated,
            opened=self.opened,
            missing=[{"vm_name": vm, "port": port, "nsg_id": nsg_id, "private_ip": ip} for vm, port, nsg_id, ip in missing],
        )

    @staticmethod
    def _port_result(number, active, action, access, open_):
        source = None
        if active is not None and active.sources:
            source = ",".join(active.sources)
        elif access:
            source = ",".join(access[0]["source_address_prefixes"])
        return PortResult(
            number,
            action,
            source=source,
            end_time_utc=_arm.format_azure_datetime(active.end_time) if active is not None else None,
            status=active.status if active is not None else None,
            open=open_,
            access=access or [],
        )

    @staticmethod
    def _diff_line(active, is_open):
        if active is None or not is_open:
            return "closed"
        return "open from %s until %s" % (",".join(active.sources) or "caller", _arm.format_azure_datetime(active.end_time))

    def _opened_item(self, plan, port, source, access):
        record = plan["record"]
        lease = {}
        if self.options.lease:  # what jit_guard needs to renew it
            until = _arm.parse_azure_datetime(self.now) + timedelta(seconds=self.options.duration)
            lease = {"lease": self.options.lease, "access_until": _arm.format_azure_datetime(until)}
        return {
            **lease,
            "vm_id": record["id"],
            "vm_name": record["name"],
            "port": port["number"],
            "source": source,
            "policy_id": plan["policy"]["id"],
            "end_time_utc": port.get("endTimeUtc"),
            "private_ips": sorted(OrderedDict.fromkeys(pair[1] for pair in plan["paths"])),
            "nsg_ids": list(OrderedDict.fromkeys(pair[0] for pair in plan["paths"])),
            "nsg_rules": _access.nsg_rule_refs(access),
        }

    def _finish_present(self, plans, port_results):
        for plan in plans:
            record = plan["record"]
            ports = [port_results[(record["id"], port["number"])] for port in plan["ports"]]
            self.results.append(self._vm_result(record, plan["policy"]["id"], ports))
            for port in ports:
                key = "%s:%s" % (record["name"], port.number)
                if port.action == ACTION_ALREADY_OPEN:
                    self.diff["after"][key] = self.diff["before"][key]
                else:
                    self.diff["after"][key] = "open from %s until %s" % (port.source or "caller", port.end_time_utc)
        return _request.earliest(port["end_time_utc"] for vm in self.results for port in vm["ports"])

    @staticmethod
    def _vm_result(record, policy_id, ports):
        return {
            "id": record["id"],
            "name": record["name"],
            "resource_group": record["resource_group"],
            "policy_id": policy_id,
            "private_ips": [nic["private_ip"] for nic in record.get("nics") or [] if nic.get("private_ip")],
            "public_ips": [nic["public_ip"] for nic in record.get("nics") or [] if nic.get("public_ip")],
            "ports": [port.as_dict() for port in ports],
        }

    # -- absent ------------------------------------------------------------------------------
    def run_absent(self):
        options = self.options
        close_targets, plans = [], []
        for target, record in self.vms:
            candidates = self.policy_index.get(_arm.normalize_id(record["id"]), [])
            chosen = _request.choose_policy(candidates, record)
            policy, entry = chosen if chosen else (None, None)
            ports = options.ports_for(target)
            close_targets.append({"vm_id": record["id"], "ports": ports, "sources": list(options.sources) if options.sources else None})
            # Ports to report on: those asked for, else the policy's (open or not) plus any found open.
            reported = set(ports) if ports is not None else {_jit.canonical_port(port)["number"] for port in (entry or {}).get("ports") or []}
            plans.append((record, policy, reported))

        # One selection for every way of closing (this module and the jit_guard callback).
        planned, _unknown, kept = _close.plan_close(self.topology, self.nsgs, close_targets)
        # Requests initiated moments ago whose rules are not on every NSG yet: closing only what is
        # there would leave the rest to appear afterwards and stay open for the whole duration.
        pending = [] if options.stale_only else self.find_pending(plans)
        if options.stale_only:
            planned = [rule for rule in planned if not self._kept_by_a_request(rule)]
        for rule in kept:
            self.module.warn("left JIT allow rule %s on NSG %s untouched: %s" % (rule["rule_name"], _access.nsg_name(rule["nsg_id"]), rule["reason"]))
        if planned and not self.module.check_mode:
            self._delete_all(planned)
        if pending and options.wait and not self.module.check_mode:
            planned = planned + self.close_pending(pending)
        if planned and not self.module.check_mode:  # a later close in this run must not wait for these
            closed_at = _arm.format_azure_datetime(_request.server_time(self.module.api.server_date, datetime.now(_UTC)))
            vm_ports = OrderedDict(((rule["vm_id"], number), None) for rule in planned for number in rule["port_numbers"])
            self.record_for_guard(closed_items([{"vm_id": vm_id, "port": number} for vm_id, number in vm_ports], closed_at))
        self.changed = bool(planned)
        still_pending = {(_arm.normalize_id(item["record"]["id"]), item["port"]) for item in pending}

        for record, policy, reported in plans:
            rules_by_port = OrderedDict()
            for rule in planned:
                if _arm.same_id(rule["vm_id"], record["id"]):
                    for number in rule["port_numbers"]:
                        rules_by_port.setdefault(number, []).append(rule)
            active_map = _request.active_requests(policy, self.now) if policy else {}
            ports = []
            for number in sorted(reported | set(rules_by_port)):
                rules = rules_by_port.get(number, [])
                active = active_map.get((_arm.normalize_id(record["id"]), number))
                key = "%s:%s" % (record["name"], number)
                if rules:
                    described = [_close.describe_planned_rule(rule) for rule in rules]
                    sources = ",".join(sorted({token for rule in rules for token in rule["sources"]}))
                    action = ACTION_WOULD_CLOSE if self.module.check_mode else ACTION_CLOSED
                    self.closed.append(
                        {
                            "vm_id": record["id"],
                            "vm_name": record["name"],
                            "port": number,
                            "source": sources,
                            "policy_id": policy["id"] if policy else None,
                            "nsg_rules": _access.nsg_rule_refs(described),
                        }
                    )
                    self.diff["before"][key] = "open from %s" % sources
                    self.diff["after"][key] = "closed"
                    result = self._port_result(number, active, action, described, open_=bool(self.module.check_mode))
                    result.source = sources
                elif (_arm.normalize_id(record["id"]), number) in still_pending:
                    self.diff["before"][key] = self.diff["after"][key] = "initiated, rules not applied yet"
                    result = self._port_result(number, active, ACTION_PENDING, [], open_=False)
                else:
                    self.diff["before"][key] = self.diff["after"][key] = "closed"
                    result = self._port_result(number, active, ACTION_NOT_OPEN, [], open_=False)
                ports.append(result)
            self.results.append(self._vm_result(record, policy["id"] if policy else None, ports))

    def find_pending(self, plans):
        """``[{record, port, active, missing}]``: VM ports with a request young enough for Defender
        to still be applying it (:data:`_request.APPLY_WINDOW_SECONDS`) whose allow rule is missing
        on some NSG of the path (``missing``: those ``(nsg id, ip)``). Read before any deletion."""
        pending = []
        closed_earlier = read_closed(os.environ.get(RECORD_VARIABLE) or "")  # by this run, when guarded
        for record, policy, reported in plans:
            vm_key = _arm.normalize_id(record["id"])
            actives = _request.active_requests(policy, self.now) if policy else {}
            for (key, number), active in sorted(actives.items()):
                if key != vm_key or number not in reported or not _request.may_still_apply(active, self.now):
                    continue
                if self.options.sources and active.sources and not _nsg.source_set(active.sources) <= _nsg.source_set(self.options.sources):
                    continue
                closed_at = closed_earlier.get((key, number))
                if closed_at and _arm.parse_azure_datetime(closed_at) >= active.start_time:
                    continue  # applied, then closed by an earlier task of this run
                access, missing = _access.access_on_path(_nsg.path_pairs(record), self.nsgs, number, active.sources or None)
                if missing and not access and self.applied_elsewhere(active, actives):
                    continue  # its request was applied (another of its ports has rules): this one was closed
                if missing:
                    pending.append({"record": record, "port": number, "active": active, "missing": missing})
        return pending

    def applied_elsewhere(self, active, actives):
        """Whether another VM port of the same request (same start time) has its allow rules."""
        for (vm_key, number), other in actives.items():
            if other is active or other.start_time != active.start_time:
                continue
            record = self.topology.get(vm_key)
            if record is not None and _access.access_on_path(_nsg.path_pairs(record), self.nsgs, number, other.sources or None)[0]:
                return True
        return False

    def close_pending(self, pending):
        """Wait for the allow rules of ``pending`` VM ports and delete them as they appear, until
        none is missing or each request is older than the apply window (then nothing more will
        come: not open). Fails naming what is still pending when ``wait_timeout`` ends first.
        Returns the rules deleted; ``pending`` keeps only what is still pending."""
        sources = list(self.options.sources) if self.options.sources else None
        deleted, done = [], set()

        def settled():
            fresh = self.read_nsgs([nsg_id for item in pending for nsg_id, _ip in item["missing"]])
            now = _request.server_time(self.module.api.server_date, datetime.now(_UTC))
            targets = [{"vm_id": item["record"]["id"], "ports": [item["port"]], "sources": sources} for item in pending]
            planned = [rule for rule in _close.plan_close(self.topology, fresh, targets)[0] if (rule["nsg_id"].lower(), rule["rule_name"].lower()) not in done]
            if planned:
                self._delete_all(planned)
                deleted.extend(planned)
                done.update((rule["nsg_id"].lower(), rule["rule_name"].lower()) for rule in planned)
            for item in list(pending):
                vm_key = _arm.normalize_id(item["record"]["id"])
                seen = {
                    _arm.normalize_id(rule["nsg_id"]) for rule in deleted if _arm.normalize_id(rule["vm_id"]) == vm_key and item["port"] in rule["port_numbers"]
                }
                item["missing"] = [(nsg_id, ip) for nsg_id, ip in item["missing"] if _arm.normalize_id(nsg_id) not in seen]
                if not item["missing"] or not _request.may_still_apply(item["active"], now):
                    pending.remove(item)
            return not pending

        if not wait_until(settled, self.options.wait_timeout, check_first=False):
            names = ", ".join(
                "%s port %s (initiated %s)" % (item["record"]["name"], item["port"], _arm.format_azure_datetime(item["active"].start_time)) for item in pending
            )
            self.module.fail_json(
                msg="timed out after %s s waiting for the allow rules of JIT requests initiated moments ago, to close them: still pending %s."
                " Defender for Cloud may still apply them; they stay open until their end time unless closed" % (self.options.wait_timeout, names),
                changed=bool(deleted),
                pending=[{"vm_id": item["record"]["id"], "vm_name": item["record"]["name"], "port": item["port"]} for item in pending],
                deleted_rules=[_access.rule_ref(rule) for rule in deleted],
            )
        return deleted

    def _kept_by_a_request(self, rule):
        """Whether an active request (of any policy of the VM) covers a port of this allow rule."""
        vm_key = _arm.normalize_id(rule["vm_id"])
        for policy, _entry in self.policy_index.get(vm_key, []):
            active = _request.active_requests(policy, self.now)
            if any((vm_key, port) in active for port in rule["port_numbers"]):
                return True
        return False

    def _delete_all(self, planned):
        """Delete every planned rule; one failed deletion does not stop the others. On any
        failure, fail naming each error and every rule still open (it admits traffic)."""
        errors = []

        def attempt(action, function, *args, **kwargs):
            try:
                return function(*args, **kwargs)
            except AzureError as exc:
                errors.append((action, exc))
                return None

        deleted = _close.delete_rules(self.module.api, attempt, planned)
        if not errors:
            return
        left = [rule for rule in planned if rule not in deleted]
        messages = [describe_error(exc, action) for action, exc in errors]
        self.module.fail_json(
            msg="%s; still open: %s"
            % ("; ".join(messages), ", ".join("%s on NSG %s (VM %s)" % (rule["rule_name"], rule["nsg_name"], rule["vm_name"]) for rule in left) or "none"),
            error=error_details(errors[0][1]),
            errors=messages,
            changed=bool(deleted),
            still_open=[_access.rule_ref(rule) for rule in left],
            deleted_rules=[_access.rule_ref(rule) for rule in deleted],
        )

    # -- entry -------------------------------------------------------------------------------
    def run(self):
        self.read_state()
        expires_at = self.run_present() if self.options.state == "present" else self.run_absent()
        result = {
            "changed": self.changed,
            "virtual_machines": self.results,
            "expires_at": expires_at,
            "opened": self.opened,
            "closed": self.closed,
            "initiated": self.initiated,
        }
        if self.module.diff_mode:
            result["diff"] = {
                "before": "".join("%s: %s\n" % item for item in sorted(self.diff["before"].items())),
                "after": "".join("%s: %s\n" % item for item in sorted(self.diff["after"].items())),
            }
        self.module.exit_json(**result)


def main():
    module = AzureJitModule(ARGUMENT_SPEC, supports_check_mode=True)
    with module.failing_cleanly():
        JitRequest(module).run()


if __name__ == "__main__":
    main()

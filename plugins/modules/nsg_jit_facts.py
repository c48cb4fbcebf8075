#!/usr/bin/python
# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nsg_jit_facts
short_description: Report JIT coverage, open access and real NSG exposure of Azure VMs
version_added: 0.1.0
description:
  - Reports, for every virtual machine in scope, whether Microsoft Defender for Cloud just-in-time
    (JIT) VM access protects it, which access requests are open right now, which JIT rules sit on
    its network security groups (NSGs), and whether the Internet actually reaches its management
    ports once the subnet NSG and the NIC NSG are evaluated in priority order with Azure's default
    rules.
  - Finds JIT bypasses (an allow rule evaluated before JIT's deny rule admits the Internet
    anyway), stale JIT rules (allow rules whose request is over, deny rules for VMs in no policy)
    and drift (a policy VM whose deny rule was deleted, as Terraform or
    C(azure.azcollection.azure_rm_securitygroup) with C(purge_rules) do).
  - Reads in bulk - one paged list call per kind for the whole subscription (VMs with power state,
    NICs, NSGs, virtual networks, public IPs, Bastion hosts, JIT policies), whatever the number of VMs - and
    filters locally. It never writes.
  - Returns only C(ansible_facts.azure_jit). See RV(ansible_facts.azure_jit) for the layout and
    C(docs/nsg_jit_facts.md) in the collection for how to read it.
author:
  - jitaccess.azure contributors (@jitaccess)
extends_documentation_fragment:
  - jitaccess.azure._auth
  - jitaccess.azure._attributes
  - jitaccess.azure._attributes.FACTS
  - jitaccess.azure._attributes.ACTIONGROUPS
attributes:
  check_mode:
    support: full
    details: The module only reads; it behaves the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
  facts:
    support: full
options:
  subscriptions:
    description:
      - The subscriptions to read (ids). V(all) reads every subscription the identity can see
        (one C(GET /subscriptions), then the same bulk reads in each).
      - Default - the subscriptions of the O(virtual_machines) given by id, else O(subscription_id).
      - VM entries carry C(subscription_id), and RV(ansible_facts.azure_jit.summary.subscriptions)
        breaks the counts down per subscription.
    type: list
    elements: str
    version_added: 0.2.0
  resource_groups:
    description:
      - Only report VMs in these resource groups (names, case-insensitive).
      - Combines with O(virtual_machines) and O(tags) - a VM must match every filter given.
      - When no filter is given, every VM of the subscriptions read is reported.
    type: list
    elements: str
  virtual_machines:
    description:
      - Only report these VMs. Each entry is either O(virtual_machines[].id) or
        O(virtual_machines[].name) with O(virtual_machines[].resource_group).
      - A VM that does not exist fails the module, naming it.
    type: list
    elements: dict
    suboptions:
      id:
        description: Resource id of the VM.
        type: str
      name:
        description: Name of the VM.
        type: str
      resource_group:
        description: Resource group of the VM.
        type: str
  tags:
    description:
      - Only report VMs that carry every one of these tags with exactly this value (tag names
        are compared case-insensitively).
    type: dict
  detail:
    description:
      - V(full) returns every key of every VM entry.
      - V(summary) returns a compact report for large fleets (about a tenth of the size) - each VM entry keeps
        its identity and status (id, name, resource_group, location, os_type, power_state, tags, jit_status,
        unsupported_reason, policy, other_policies, bastion_only) and only the exposure entries that need attention
        (RV(ansible_facts.azure_jit.virtual_machines[].exposure[].exposed),
        RV(ansible_facts.azure_jit.virtual_machines[].exposure[].private_only) or
        RV(ansible_facts.azure_jit.virtual_machines[].exposure[].jit_bypassed)); ports, active_requests,
        jit_rules and nics are left out. Everything else - the summary counts included - is the same as with
        V(full). The C(jitaccess.azure.jit_fleet) role reads the fleet this way.
    type: str
    choices: [full, summary]
    default: full
  save_inventory:
    description:
      - Write what this task listed (VMs, network interfaces, network security groups, virtual networks,
        public IPs, Bastion hosts) to this path, owner-only (mode 0600), for later tasks of the same run to reuse
        (O(reuse_inventory) here, O(jitaccess.azure.jit_policy#module:reuse_inventory) in jit_policy)
        instead of listing the fleet again. Large data then moves from task to task through a file, not
        through Ansible variables.
    type: path
    version_added: 0.2.0
  facts_file:
    description:
      - Write the whole C(azure_jit) fact to this path, owner-only (mode 0600), and leave its fleet-sized
        lists (RV(ansible_facts.azure_jit.virtual_machines), RV(ansible_facts.azure_jit.policies),
        RV(ansible_facts.azure_jit.stale_rules) and RV(ansible_facts.azure_jit.drift)) out of the task's result,
        which then names the file in RV(ansible_facts.azure_jit.facts_file). Ansible copies a task's result
        several times; at 10,000 VMs the lists are megabytes, and moving them costs seconds per task.
      - The C(jitaccess.azure.jit_fleet_selection) and C(jitaccess.azure.jit_fleet_report) filters take
        such a result in place of the whole fact and read the file (the module must run on the
        controller, as the C(jitaccess.azure.jit_fleet) role's tasks do).
    type: path
    version_added: 0.2.0
  reuse_inventory:
    description:
      - Path of a file written moments before, in the same run, by O(save_inventory). The VMs, network
        interfaces, virtual networks, public IPs and Bastion hosts are taken from it; the network security groups and
        JIT policies, which JIT writes change, are listed afresh. For the read right after a rollout.
      - A file that cannot be used (missing, older than an hour, another subscription) is ignored with a
        warning, and everything is listed as usual.
    type: path
    version_added: 0.2.0
notes:
  - Needs read access only, at subscription scope - the built-in Reader role, or the least-privilege
    custom role C(docs/rbac/jit-report-readonly.json) shipped with the collection
    (C(Microsoft.Compute/virtualMachines/read), C(Microsoft.Compute/virtualMachines/instanceView/read),
    C(Microsoft.Network/networkInterfaces/read), C(Microsoft.Network/networkSecurityGroups/read),
    C(Microsoft.Network/virtualNetworks/read), C(Microsoft.Network/publicIPAddresses/read),
    C(Microsoft.Network/bastionHosts/read), C(Microsoft.Security/locations/jitNetworkAccessPolicies/read)).
  - The user guide C(docs/nsg_jit_facts.md) explains exposure, bypasses, stale rules and drift.
  - Exposure is computed from NSG rules only. Azure Firewall, route tables, load balancer NAT
    rules and the VM's own firewall are not evaluated; virtual network peerings count only for which
    Bastion hosts reach a VM, so C(VirtualNetwork) means the VM's own address spaces.
  - A VM with several NICs gets one exposure entry per NIC and port.
seealso:
  - module: jitaccess.azure.jit_policy
  - module: jitaccess.azure.jit_request
  - name: Manage just-in-time VM access (Microsoft Learn)
    description: How Defender for Cloud JIT works.
    link: https://learn.microsoft.com/azure/defender-for-cloud/just-in-time-access-usage
"""

EXAMPLES = r"""
- name: Report the whole subscription
  jitaccess.azure.nsg_jit_facts:

- name: Fail when any management port is exposed to the Internet
  ansible.builtin.assert:
    that: ansible_facts.azure_jit.summary.exposed_ports == 0
    fail_msg: >-
      Exposed: {{ ansible_facts.azure_jit.virtual_machines | subelements('exposure')
                  | selectattr('1.exposed') | map(attribute='0.name') | unique | list }}

- name: List VMs JIT does not protect yet (candidates for jitaccess.azure.jit_policy)
  ansible.builtin.debug:
    msg: "{{ ansible_facts.azure_jit.virtual_machines | selectattr('jit_status', 'eq', 'not_configured') | map(attribute='id') | list }}"

- name: List every bypassed port
  ansible.builtin.debug:
    msg: >-
      {% for vm in ansible_facts.azure_jit.virtual_machines %}{% for e in vm.exposure if e.jit_bypassed %}
      {{ vm.name }}:{{ e.port }} opened by {{ e.bypass_rules | map(attribute='name') | join(', ') }}
      {% endfor %}{% endfor %}

- name: Show drift (JIT deny rules deleted by another tool)
  ansible.builtin.debug:
    var: ansible_facts.azure_jit.drift

- name: Report production web servers only
  jitaccess.azure.nsg_jit_facts:
    resource_groups: [rg-web]
    tags:
      env: prod

- name: Compact report of a large fleet (identity, status and the exposures that need attention)
  jitaccess.azure.nsg_jit_facts:
    detail: summary

- name: Report two VMs
  jitaccess.azure.nsg_jit_facts:
    virtual_machines:
      - name: web-1
        resource_group: rg-web
      - id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-db/providers/Microsoft.Compute/virtualMachines/db-1
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to the host's facts.
  returned: always
  type: dict
  contains:
    azure_jit:
      description:
        - The report. Lists are sorted (VMs by resource group then name; ports by number).
      returned: always
      type: dict
      contains:
        subscription_id:
          description: The configured subscription (or, without one, the first subscription read).
          type: str
          returned: always
          sample: 00000000-0000-0000-0000-000000000001
        subscription_ids:
          description: Every subscription that was read (see O(subscriptions)).
          type: list
          elements: str
          returned: always
          version_added: 0.2.0
          sample: [00000000-0000-0000-0000-000000000001]
        facts_file:
          description: The file the whole fact was written to (O(facts_file)); the fleet-sized lists are there only.
          type: str
          returned: when O(facts_file) is set
          version_added: 0.2.0
          sample: /tmp/tmpa1b2c3.jit_fleet/facts-before.json
        generated_at:
          description: When the report was made (UTC); active requests are judged at this time.
          type: str
          returned: always
          sample: "2026-11-21T10:00:00Z"
        scope:
          description: The filters used (C(whole_subscription) is true when no filter was given).
          type: dict
          returned: always
          sample:
            resource_groups: [rg-web]
            virtual_machines: []
            tags: {env: prod}
            whole_subscription: false
        virtual_machines:
          description: One entry per VM in scope.
          type: list
          elements: dict
          returned: unless O(facts_file) is set (then in the file only)
          contains:
            id:
              description: VM resource id.
              type: str
              returned: always
            name:
              description: VM name.
              type: str
              returned: always
            subscription_id:
              description: The subscription of the VM.
              type: str
              returned: always
              version_added: 0.2.0
            resource_group:
              description: VM resource group.
              type: str
              returned: always
            location:
              description: VM region (also the region of its JIT policy).
              type: str
              returned: always
            os_type:
              description: V(Linux) or V(Windows).
              type: str
              returned: always
            power_state:
              description: From the instance view, for example V(running), V(deallocated).
              type: str
              returned: always
            tags:
              description: VM tags.
              type: dict
              returned: always
            jit_status:
              description:
                - V(configured) - the VM is in a JIT policy.
                - V(not_configured) - JIT can protect it but it is in no policy.
                - V(unsupported) - JIT cannot protect it; see RV(ansible_facts.azure_jit.virtual_machines[].unsupported_reason).
              type: str
              returned: always
              choices: [configured, not_configured, unsupported]
            unsupported_reason:
              description: Why JIT cannot protect the VM (no NIC; no NSG on any NIC or subnet), else V(null).
              type: str
              returned: always
            policy:
              description: The JIT policy holding the VM (V(null) when none).
              type: dict
              returned: always
              contains:
                id:
                  description: Policy resource id.
                  type: str
                name:
                  description: Policy name.
                  type: str
                resource_group:
                  description: Policy resource group.
                  type: str
                location:
                  description: Policy region.
                  type: str
            other_policies:
              description: Further policies that also list the VM (unusual); same keys as RV(ansible_facts.azure_jit.virtual_machines[].policy).
              type: list
              elements: dict
              returned: when the VM is in more than one policy
            bastion_only:
              description:
                - V(true) when the VM is reachable only through Azure Bastion on its management and policy ports (those
                  of RV(ansible_facts.azure_jit.virtual_machines[].exposure)) - all of these hold
                - A Bastion host can reach it (RV(ansible_facts.azure_jit.virtual_machines[].bastion_hosts) is not empty).
                - No such port is exposed to the Internet (RV(ansible_facts.azure_jit.virtual_machines[].exposure[].exposed)).
                - Every allowed source of its JIT policy ports lies inside the C(AzureBastionSubnet) of such a host.
                - On each NIC, at least one NSG on the path admits those ports only from such subnets - every allow rule
                  (JIT allow rules and Azure's default rules included) that matches before a deny of every source (such
                  as the JIT deny rule). C(VirtualNetwork), C(*), other service tags and application security groups are
                  wider than a Bastion subnet, so a VM whose ports Azure's C(AllowVnetInBound) rule reaches is not
                  Bastion-only. A NIC without NSG is not either.
              type: bool
              returned: always
              version_added: 0.2.0
            bastion_hosts:
              description:
                - Ids of the Bastion hosts that can reach the VM - those of its own virtual network and of virtual networks
                  directly peered with it (peering state C(Connected)) - among the Bastion hosts of the subscriptions read.
              type: list
              elements: str
              returned: when O(detail=full)
              version_added: 0.2.0
            ports:
              description: The VM's ports in its JIT policy (empty when none).
              type: list
              elements: dict
              returned: when O(detail=full)
              contains:
                number:
                  description: Port number.
                  type: int
                protocol:
                  description: V(TCP), V(UDP) or V(*).
                  type: str
                allowed_source_address_prefixes:
                  description: Sources a request may name.
                  type: list
                  elements: str
                max_request_access_duration:
                  description: Longest request, ISO 8601.
                  type: str
            active_requests:
              description: Access requests open right now (status V(Initiated), end time in the future), one per port.
              type: list
              elements: dict
              returned: when O(detail=full)
              contains:
                port:
                  description: Port number.
                  type: int
                closed_early:
                  description:
                    - V(true) when the access was closed before the request's end (its JIT allow rules are gone
                      from the path, for example by M(jitaccess.azure.jit_request) O(jitaccess.azure.jit_request#module:state=absent)).
                      Azure has no way to revoke a request, so it keeps the status V(Initiated) until its end time.
                  type: bool
                  version_added: 0.2.0
                sources:
                  description: Requested source prefixes (empty when the service recorded none).
                  type: list
                  elements: str
                start_time_utc:
                  description: When it was requested.
                  type: str
                end_time_utc:
                  description: When access ends.
                  type: str
                status:
                  description: Always V(Initiated).
                  type: str
                requestor:
                  description: Who requested it (user or service principal).
                  type: str
                justification:
                  description: The justification given, or V(null).
                  type: str
            jit_rules:
              description: JIT rules (recognised by name or description) on the VM's NSGs whose destination is one of its private IPs.
              type: list
              elements: dict
              returned: when O(detail=full)
              contains:
                kind:
                  description: V(deny) (the standing block) or V(allow) (opened by a request).
                  type: str
                nsg:
                  description: NSG name.
                  type: str
                nsg_id:
                  description: NSG resource id.
                  type: str
                level:
                  description: V(subnet) or V(nic).
                  type: str
                name:
                  description: Rule name.
                  type: str
                priority:
                  description: Rule priority.
                  type: int
                ports:
                  description: Destination ports (numbers, or C(low-high) strings for ranges).
                  type: list
                  elements: raw
                sources:
                  description: Source prefixes.
                  type: list
                  elements: str
                destination:
                  description: Destination prefixes.
                  type: list
                  elements: str
                stale:
                  description: True when the rule is listed in RV(ansible_facts.azure_jit.stale_rules).
                  type: bool
            nics:
              description: Network interfaces.
              type: list
              elements: dict
              returned: when O(detail=full)
              contains:
                name:
                  description: NIC name.
                  type: str
                id:
                  description: NIC resource id.
                  type: str
                private_ip:
                  description: Private IP of the primary IP configuration.
                  type: str
                subnet_id:
                  description: Subnet resource id.
                  type: str
                subnet_nsg:
                  description: Resource id of the subnet's NSG, or V(null).
                  type: str
                nic_nsg:
                  description: Resource id of the NIC's NSG, or V(null).
                  type: str
                public_ip:
                  description: Public IP address, or V(null).
                  type: str
                public_ip_id:
                  description: Public IP resource id, or V(null).
                  type: str
                public_ip_sku:
                  description:
                    - SKU of the public IP (V(Standard), V(Basic)), or V(null). A Standard public IP is closed to
                      inbound traffic unless an NSG on the path allows it.
                  type: str
                  version_added: 0.2.0
            exposure:
              description:
                - One entry per NIC and port - the management ports of the VM's OS (TCP; Linux 22, Windows 3389, 5985
                  and 5986, all four when the OS is unknown) and every port of the VM's JIT policy.
                - With O(detail=summary), only the entries that are exposed, private_only or jit_bypassed.
                - The subnet NSG is evaluated, then the NIC NSG, each in priority order with Azure's default rules,
                  for an arbitrary Internet source; every rule present counts, including JIT allow rules of active requests.
              type: list
              elements: dict
              returned: always
              contains:
                port:
                  description: Port number.
                  type: int
                protocol:
                  description: V(TCP) or V(UDP).
                  type: str
                nic:
                  description: NIC name (its private IP is the destination evaluated; see RV(ansible_facts.azure_jit.virtual_machines[].nics)).
                  type: str
                public_ip:
                  description: Public IP address of the NIC, or V(null).
                  type: str
                in_policy:
                  description: True when the port is in the VM's JIT policy.
                  type: bool
                jit_protected:
                  description: True when a JIT deny rule for this address and port is on an NSG of the path.
                  type: bool
                internet_allowed:
                  description: True when both NSGs admit any Internet source.
                  type: bool
                internet_partial:
                  description: True when not every Internet source is admitted but some prefixes are
                    (RV(ansible_facts.azure_jit.virtual_machines[].exposure[].admitted_prefixes)).
                  type: bool
                admitted_prefixes:
                  description: The Internet prefixes admitted when RV(ansible_facts.azure_jit.virtual_machines[].exposure[].internet_partial).
                  type: list
                  elements: str
                exposed:
                  description:
                    - Reachable from the Internet - the NSGs admit the Internet (all or part of it) and the NIC has a
                      public IP that lets it in. A Standard-SKU public IP with no NSG on the path lets nothing in (it
                      is closed to inbound traffic unless an NSG allows it); a Basic or unknown SKU counts as open.
                  type: bool
                private_only:
                  description:
                    - The NSGs admit any source but the Internet has no way in (no public IP, or a Standard public IP
                      and no NSG) - open to any source inside the network, or through a load balancer, NAT or
                      firewall that forwards to it.
                  type: bool
                open_by_jit_request:
                  description:
                    - The Internet (all or part) gets in only through JIT allow rules of active access requests - intended,
                      time-bound access. Such ports are not counted in RV(ansible_facts.azure_jit.summary.exposed_ports).
                    - A JIT allow rule left behind without an active request does not count as a request (see
                      RV(ansible_facts.azure_jit.stale_rules)).
                  type: bool
                jit_bypassed:
                  description: JIT protects the port, yet without its allow rules the Internet still gets in - an allow rule before the deny rule admits it.
                  type: bool
                bypass_rules:
                  description: The rules that bypass JIT (nsg, nsg_id, name, priority, level).
                  type: list
                  elements: dict
                decided_by:
                  description:
                    - The deciding rule of the path - the first level that blocks, else the last level with an NSG
                      (level, nsg, rule, priority, access; all V(null) without any NSG).
                  type: dict
                levels:
                  description:
                    - The verdict of each level that has an NSG, subnet first then NIC - level, nsg, allowed, and the deciding
                      rule and priority (V(null) when no rule matched, which only happens for partial Internet sources).
                  type: list
                  elements: dict
        policies:
          description: JIT policies holding VMs in scope (every policy when the scope is the whole subscription).
          type: list
          elements: dict
          returned: unless O(facts_file) is set (then in the file only)
          contains:
            id:
              description: Policy resource id.
              type: str
            name:
              description: Policy name.
              type: str
            resource_group:
              description: Policy resource group.
              type: str
            location:
              description: Policy region.
              type: str
            virtual_machines:
              description: Number of VMs in the policy.
              type: int
        stale_rules:
          description:
            - JIT rules that no longer serve a purpose - allow rules with no active request (expired or revoked
              but still present), deny rules for VMs in no policy, deny rules for ports not in the policy, and
              (whole-subscription scope only) JIT rules whose destination is no VM behind that NSG.
            - Same keys as RV(ansible_facts.azure_jit.virtual_machines[].jit_rules) plus description, vm_id, vm_name,
              resource_group and reason (vm_id is V(null) for a rule whose destination is no VM; vm_name then comes from the
              rule description).
          type: list
          elements: dict
          returned: unless O(facts_file) is set (then in the file only)
        drift:
          description:
            - VMs in a JIT policy whose deny rule is missing on an NSG of their path (keys vm_id, vm_name,
              resource_group, nsg, nsg_id, level, private_ip, missing_ports, reason), or that JIT can no longer protect.
          type: list
          elements: dict
          returned: unless O(facts_file) is set (then in the file only)
        defender_for_servers:
          description:
            - Microsoft Defender for Servers on each subscription read (one GET of its C(VirtualMachines)
              pricing). Just-in-time VM access exists only with Plan 2.
            - Keys C(subscription_id), C(pricing_tier) (V(Standard) or V(Free)), C(sub_plan) (V(P1), V(P2)
              or V(null)) and C(jit_available) (V(null) when the plan could not be read, for example without
              C(Microsoft.Security/pricings/read); the module then warns).
          type: list
          elements: dict
          returned: always
          version_added: 0.2.0
        summary:
          description:
            - Counts over the VMs in scope.
            - C(exposed_ports) / C(exposed_virtual_machines) count exposure entries that are RV(ansible_facts.azure_jit.virtual_machines[].exposure[].exposed)
              other than through an active access request; those are in C(open_by_jit_request_ports).
            - C(private_only_open_ports) counts entries that are RV(ansible_facts.azure_jit.virtual_machines[].exposure[].private_only).
          type: dict
          returned: always
          contains:
            virtual_machines:
              description: VMs in scope.
              type: int
            jit_status:
              description: VMs per RV(ansible_facts.azure_jit.virtual_machines[].jit_status).
              type: dict
            unsupported_reasons:
              description: VMs per unsupported reason.
              type: dict
            policies:
              description: Length of RV(ansible_facts.azure_jit.policies).
              type: int
            active_requests:
              description: Active requests over all VMs (one per VM and port) whose access is still open - those closed early are counted in C(closed_early_requests).
              type: int
            closed_early_requests:
              description:
                - Requests Azure still shows as V(Initiated) whose access was closed before their end (no JIT allow rule
                  left); not an open port.
              type: int
              version_added: 0.2.0
            exposed_ports:
              description: Exposure entries exposed to the Internet other than by an active access request.
              type: int
            exposed_virtual_machines:
              description: VMs with at least one such entry.
              type: int
            open_by_jit_request_ports:
              description: Exposure entries exposed only by active access requests.
              type: int
            private_only_open_ports:
              description: Entries whose NSGs admit the Internet on a NIC without public IP.
              type: int
            jit_bypassed_ports:
              description: Entries with RV(ansible_facts.azure_jit.virtual_machines[].exposure[].jit_bypassed).
              type: int
            jit_bypassed_virtual_machines:
              description: VMs with at least one bypassed port.
              type: int
            stale_rules:
              description: Length of RV(ansible_facts.azure_jit.stale_rules).
              type: int
            drift:
              description: Length of RV(ansible_facts.azure_jit.drift).
              type: int
            bastion_only_virtual_machines:
              description: VMs with RV(ansible_facts.azure_jit.virtual_machines[].bastion_only).
              type: int
              version_added: 0.2.0
            subscriptions_without_jit:
              description:
                - Subscriptions where JIT cannot be used (Defender for Servers Plan 2 is not enabled), from
                  RV(ansible_facts.azure_jit.defender_for_servers).
              type: list
              elements: str
              version_added: 0.2.0
            subscriptions:
              description:
                - The same counts (every key above) for each subscription read, by subscription id.
              type: dict
              version_added: 0.2.0
  sample:
    azure_jit:
      subscription_id: 00000000-0000-0000-0000-000000000001
      subscription_ids: [00000000-0000-0000-0000-000000000001]
      generated_at: "2026-11-21T10:00:00Z"
      scope: {resource_groups: [], virtual_machines: [], tags: {}, whole_subscription: true}
      virtual_machines:
        - id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/web-1
          name: web-1
          subscription_id: 00000000-0000-0000-0000-000000000001
          resource_group: rg-web
          location: westeurope
          os_type: Linux
          power_state: running
          tags: {env: prod}
          jit_status: configured
          unsupported_reason: null
          policy:
            id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default
            name: default
            resource_group: rg-web
            location: westeurope
          ports:
            - {number: 22, protocol: TCP, allowed_source_address_prefixes: ["*"], max_request_access_duration: PT3H}
          active_requests:
            - port: 22
              closed_early: false
              sources: [203.0.113.7]
              start_time_utc: "2026-11-21T09:30:00Z"
              end_time_utc: "2026-11-21T10:30:00Z"
              status: Initiated
              requestor: ansible-ci
              justification: patching
          jit_rules:
            - kind: deny
              nsg: nsg-web
              nsg_id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web
              level: subnet
              name: MicrosoftDefenderForCloud-JITRule_1234567_0A1B2C3D4E5F60718293A4B5C6D7E8F9
              priority: 4096
              ports: [22]
              sources: ["*"]
              destination: [10.1.0.4]
              stale: false
            - kind: allow
              nsg: nsg-web
              nsg_id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web
              level: subnet
              name: MicrosoftDefenderForCloud-JITRule-987654-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9
              priority: 100
              ports: [22]
              sources: [203.0.113.7]
              destination: [10.1.0.4]
              stale: false
          nics:
            - name: web-1-nic
              id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Network/networkInterfaces/web-1-nic
              private_ip: 10.1.0.4
              subnet_id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Network/virtualNetworks/vnet-web/subnets/default
              subnet_nsg: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Network/networkSecurityGroups/nsg-web
              nic_nsg: null
              public_ip: 20.50.0.11
              public_ip_id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Network/publicIPAddresses/web-1-ip
          exposure:
            - port: 22
              protocol: TCP
              nic: web-1-nic
              public_ip: 20.50.0.11
              in_policy: true
              jit_protected: true
              internet_allowed: true
              internet_partial: false
              admitted_prefixes: []
              exposed: true
              private_only: false
              open_by_jit_request: false
              jit_bypassed: true
              bypass_rules:
                - {nsg: nsg-web, nsg_id: "/subscriptions/.../networkSecurityGroups/nsg-web", name: AllowSshAnywhere, priority: 200, level: subnet}
              decided_by: {level: subnet, nsg: nsg-web, rule: AllowSshAnywhere, priority: 200, access: Allow}
              levels:
                - {level: subnet, nsg: nsg-web, allowed: true, rule: AllowSshAnywhere, priority: 200}
            - port: 3389
              protocol: TCP
              nic: web-1-nic
              public_ip: 20.50.0.11
              in_policy: false
              jit_protected: false
              internet_allowed: false
              internet_partial: false
              admitted_prefixes: []
              exposed: false
              private_only: false
              open_by_jit_request: false
              jit_bypassed: false
              bypass_rules: []
              decided_by: {level: subnet, nsg: nsg-web, rule: DenyAllInBound, priority: 65500, access: Deny}
              levels:
                - {level: subnet, nsg: nsg-web, allowed: false, rule: DenyAllInBound, priority: 65500}
      policies:
        - id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default
          name: default
          resource_group: rg-web
          location: westeurope
          virtual_machines: 1
      stale_rules:
        - kind: allow
          nsg: nsg-db
          nsg_id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-db/providers/Microsoft.Network/networkSecurityGroups/nsg-db
          level: nic
          name: MicrosoftDefenderForCloud-JITRule-1111-0a1b2c3d-0000-0000-0000-000000000001
          priority: 100
          ports: [22]
          sources: ["*"]
          destination: [10.2.0.4]
          stale: true
          description: MDC JIT Network Access rule created by an initiation request for policy 'default' of VM 'db-1'.
          vm_id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-db/providers/Microsoft.Compute/virtualMachines/db-1
          vm_name: db-1
          resource_group: rg-db
          reason: JIT allow rule without an active access request (expired or revoked but still present)
      drift:
        - vm_id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-db/providers/Microsoft.Compute/virtualMachines/db-1
          vm_name: db-1
          resource_group: rg-db
          nsg: nsg-db
          nsg_id: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-db/providers/Microsoft.Network/networkSecurityGroups/nsg-db
          level: nic
          private_ip: 10.2.0.4
          missing_ports: [22]
          reason: "JIT deny rule missing: the port is in the VM's JIT policy but this NSG does not block it"
      summary:
        virtual_machines: 2
        jit_status: {configured: 2, not_configured: 0, unsupported: 0}
        unsupported_reasons: {}
        policies: 2
        active_requests: 1
        exposed_ports: 1
        exposed_virtual_machines: 1
        open_by_jit_request_ports: 0
        private_only_open_ports: 0
        jit_bypassed_ports: 1
        jit_bypassed_virtual_machines: 1
        stale_rules: 1
        drift: 1
"""  # noqa: E501 - resource ids in the sample

import datetime  # noqa: E402 - imports follow the documentation in Ansible modules
import re  # noqa: E402 - imports follow the documentation in Ansible modules
from dataclasses import dataclass  # noqa: E402 - imports follow the documentation in Ansible modules

from ansible_collections.jitaccess.azure.plugins.module_utils._api import (  # noqa: E402 - imports follow the documentation in Ansible modules
    list_jit_policies,
    read_servers_plan,
    subscription_ids,
)
from ansible_collections.jitaccess.azure.plugins.module_utils._arm import (  # noqa: E402 - imports follow the documentation in Ansible modules
    JitValidationError,
    describe_error,
    scrub,
    vm_id_from_reference,
)
from ansible_collections.jitaccess.azure.plugins.module_utils._facts import DETAIL_FULL, DETAILS, build_facts, check_tags  # noqa: E402 - imports follow the documentation in Ansible modules
from ansible_collections.jitaccess.azure.plugins.module_utils._jit import servers_plan  # noqa: E402 - imports follow the documentation in Ansible modules
from ansible_collections.jitaccess.azure.plugins.module_utils._module import AzureJitModule, vm_references  # noqa: E402 - imports follow the documentation in Ansible modules
from ansible_collections.jitaccess.azure.plugins.module_utils._topology import (  # noqa: E402
    STABLE_KINDS,
    Inventory,
    describe_inventory,
    load_inventory,
    read_inventory,
    save_facts,
    save_inventory,
    subscriptions_of,
)

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def check_subscriptions(values):
    """The ``subscriptions`` option: unique ids (a GUID each), or ``["all"]``; [] when not given."""
    if not values:
        return []
    if any(str(value).strip().lower() == "all" for value in values):
        if len(values) > 1:
            raise JitValidationError(f"subscriptions {values!r}: 'all' stands alone (every subscription the identity can see)")
        return ["all"]
    result = {}
    for value in values:
        text = str(value).strip()
        if not GUID.match(text):
            raise JitValidationError(f"subscriptions entry {value!r} is not a subscription id (a GUID such as 00000000-0000-0000-0000-000000000001) or 'all'")
        result.setdefault(text.lower(), text)
    return list(result.values())


ARGUMENT_SPEC = dict(
    subscriptions=dict(type="list", elements="str"),
    resource_groups=dict(type="list", elements="str"),
    virtual_machines=vm_references(required=False),
    tags=dict(type="dict"),
    detail=dict(type="str", choices=list(DETAILS), default=DETAIL_FULL),
    save_inventory=dict(type="path"),
    reuse_inventory=dict(type="path"),
    facts_file=dict(type="path"),
)


@dataclass(frozen=True)
class FactsOptions:
    """nsg_jit_facts' options, parsed and checked once."""

    subscriptions: list
    """Subscription ids, ``["all"]``, or ``[]`` (those of the VMs named, else the configured one)."""
    vm_ids: list
    resource_groups: list | None = None
    virtual_machines: list | None = None
    tags: dict | None = None
    detail: str = DETAIL_FULL


def parse_options(params, subscription):
    """:class:`FactsOptions` from the module's ``params``; raises :class:`JitValidationError`."""
    check_tags(params["tags"])
    return FactsOptions(
        subscriptions=check_subscriptions(params["subscriptions"]),
        vm_ids=[vm_id_from_reference(reference, subscription) for reference in params["virtual_machines"] or []],
        resource_groups=params["resource_groups"],
        virtual_machines=params["virtual_machines"],
        tags=params["tags"],
        detail=params["detail"],
    )


def read_plan(module, subscription_id):
    """Defender for Servers on one subscription (one GET); unknown, with a warning, when it cannot be read."""
    try:
        pricing = read_servers_plan(module.api, subscription_id)
    except Exception as exc:  # pylint: disable=broad-except  # a missing read permission must not hide the rest
        reason = describe_error(exc, "read")
        module.warn("could not read the Defender for Servers plan of subscription %s (%s): reported as unknown" % (subscription_id, reason))
        pricing = None
    return servers_plan(subscription_id, pricing)


def run(module):
    """The module's work, once its options are known to Ansible."""
    api = module.api
    subscription = module.default_subscription_id
    error = None
    try:  # bad input fails before any call to Azure
        options = parse_options(module.params, subscription)
    except JitValidationError as exc:
        error = str(exc)
    if error:  # failed outside the except block: no traceback attached to the result
        module.fail_json(msg=error)
    subscriptions = options.subscriptions
    if subscriptions == ["all"]:
        subscriptions = module.azure_call("list subscriptions", lambda: subscription_ids(api))
        if not subscriptions:
            module.fail_json(msg="subscriptions=all: the identity cannot see any subscription")
    subscriptions = subscriptions or subscriptions_of(options.vm_ids) or [module.subscription_id]
    subscription = subscription or subscriptions[0]
    reused = None
    if module.params["reuse_inventory"]:
        reused, why = load_inventory(module.params["reuse_inventory"], subscriptions, STABLE_KINDS)
        if why:
            module.warn("reuse_inventory: %s; listing the fleet again" % why)
    module.progress("listing the fleet (VMs, network interfaces, NSGs, virtual networks, public IPs, Bastion hosts) in %d subscription(s)" % len(subscriptions))
    inventory = read_inventory(api, module.azure_call, kinds=Inventory.KINDS, subscriptions=subscriptions, reused=reused)
    module.progress(describe_inventory(inventory, subscriptions, reused))
    if module.params["save_inventory"]:
        try:
            save_inventory(module.params["save_inventory"], inventory, subscriptions)
        except OSError as exc:
            module.fail_json(msg="save_inventory: cannot write %s (%s)" % (module.params["save_inventory"], exc.strerror or exc))
    policies = module.azure_call("list JIT network access policies", lambda: list_jit_policies(api, subscriptions))
    module.progress(f"listed {len(policies):,} JIT policies; evaluating the NSG rules of each VM")
    now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 - targets may run Python < 3.11
    try:
        facts = build_facts(
            inventory,
            policies,
            now,
            subscription,
            resource_groups=options.resource_groups,
            virtual_machines=options.virtual_machines,
            tags=options.tags,
            detail=options.detail,
            subscriptions=subscriptions,
            consume=True,  # the raw reads are freed as soon as they are indexed
        )
    except JitValidationError as exc:
        module.fail_json(msg=str(exc))
    summary = facts["summary"]
    module.progress(
        "evaluated {:,} VMs: {:,} exposed (VM, port) pair(s), {:,} JIT bypass(es)".format(
            len(facts["virtual_machines"]), summary.get("exposed_ports", 0) + summary.get("private_only_open_ports", 0), summary.get("jit_bypassed_ports", 0)
        )
    )
    # The raw lists are no longer needed: free them before Ansible copies the result to send it.
    del inventory, policies, reused
    facts["defender_for_servers"] = [read_plan(module, subscription_id) for subscription_id in subscriptions]
    facts["summary"]["subscriptions_without_jit"] = [plan["subscription_id"] for plan in facts["defender_for_servers"] if plan["jit_available"] is False]
    for group in options.resource_groups or []:
        if not any(vm["resource_group"].lower() == group.lower() for vm in facts["virtual_machines"]) and not (options.virtual_machines or options.tags):
            module.warn(f"resource group {group!r} has no virtual machines in subscription(s) {', '.join(subscriptions)}")
    if module.params["facts_file"]:
        try:
            facts = save_facts(module.params["facts_file"], scrub(facts, module.secrets))
        except OSError as exc:
            module.fail_json(msg="facts_file: cannot write %s (%s)" % (module.params["facts_file"], exc.strerror or exc))
    module.exit_json(changed=False, ansible_facts={"azure_jit": facts})


def main():
    module = AzureJitModule(ARGUMENT_SPEC, supports_check_mode=True)
    with module.failing_cleanly():
        run(module)


if __name__ == "__main__":
    main()

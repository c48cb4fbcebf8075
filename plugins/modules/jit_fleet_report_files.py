#!/usr/bin/python
# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

# The work is done by the action plugin of the same name, on the controller; this file documents it.

DOCUMENTATION = r"""
module: jit_fleet_report_files
short_description: Write a JIT fleet report as JSON, Markdown and HTML files on the controller
version_added: 0.2.0
description:
  - Writes a report made by the P(jitaccess.azure.jit_fleet_report#filter) filter as C(<name>.json),
    C(<name>.md) and C(<name>.html) in one directory of the controller, the three rendered in one pass
    by P(jitaccess.azure.jit_fleet_report_documents#filter). The C(jitaccess.azure.jit_fleet) role writes its
    report with it.
  - It runs in Ansible's worker on the controller and starts no module process -
    C(ansible.builtin.copy) runs two modules per file (C(stat), then C(copy)), seconds for three files.
  - Each file is written beside its destination under a private name (mode 0600), given its mode,
    then renamed over the destination - a reader sees the previous file or the new one, never part of
    one. A symbolic link at the destination is replaced, never written through. A file that already
    holds the same content with the same mode is left alone.
  - It talks to no Azure API and takes no authentication option, so it is not in the
    C(group/jitaccess.azure.azure) action group.
author:
  - jitaccess.azure contributors (@jitaccess)
extends_documentation_fragment:
  - jitaccess.azure._attributes
attributes:
  check_mode:
    support: full
    details: In check mode nothing is written; RV(files[].changed) tells which files would change.
  diff_mode:
    support: none
  idempotent:
    support: full
  action_group:
    description: Not in any action group (it talks to no Azure API).
    support: none
    membership: []
options:
  report:
    description:
      - The report, as returned by P(jitaccess.azure.jit_fleet_report#filter) (the role's C(jit_fleet_report) fact).
    type: dict
    required: true
  dest:
    description:
      - The directory to write the files in, on the controller. It must exist.
    type: path
    required: true
  name:
    description:
      - Base name of the files (a plain file name, without C(/)).
    type: str
    default: jit_fleet_report
  formats:
    description:
      - Which files to write - V(json) (C(<name>.json), the report as indented JSON), V(markdown)
        (C(<name>.md)) and V(html) (C(<name>.html), a self-contained page).
    type: list
    elements: str
    choices: [json, markdown, html]
    default: [json, markdown, html]
  mode:
    description:
      - Mode of the files - an octal string such as V("0600") or V("0640") (quote it, or YAML reads a
        number), or a symbolic mode such as V(u=rw,g=r), applied to a file with no permissions.
      - The files list every exposed management port and JIT bypass of the fleet - readable by their
        owner only unless you choose otherwise.
    type: raw
    default: "0600"
notes:
  - Runs on the controller only, as the user running Ansible - in a play on C(localhost) with the
    C(local) connection, or delegated to C(localhost). With any other connection it fails and
    writes nothing. C(become) does not apply.
seealso:
  - plugin: jitaccess.azure.jit_fleet_report
    plugin_type: filter
  - plugin: jitaccess.azure.jit_fleet_report_documents
    plugin_type: filter
"""

EXAMPLES = r"""
# An audit report of the whole subscription, without the role: read the fleet, select what the
# role would put under JIT (Linux 22, Windows 3389), build the report, write it.
- name: Read JIT coverage and exposure
  jitaccess.azure.nsg_jit_facts:
    detail: summary
  register: fleet

- name: Write the audit report
  vars:
    selection: >-
      {{ fleet.ansible_facts.azure_jit | jitaccess.azure.jit_fleet_selection(
           ports={'linux': [22], 'windows': [3389]}, allowed_source_address_prefixes=['10.0.0.0/24']) }}
  jitaccess.azure.jit_fleet_report_files:
    report: "{{ selection | jitaccess.azure.jit_fleet_report(before=fleet.ansible_facts.azure_jit) }}"
    dest: "{{ report_dir }}"  # an existing directory
    name: jit_audit
    mode: "0600"
  register: written

- name: Only the Markdown page, readable by the owner's group too
  vars:
    selection: "{{ fleet.ansible_facts.azure_jit | jitaccess.azure.jit_fleet_selection(ports={'linux': [22], 'windows': [3389]}) }}"
  jitaccess.azure.jit_fleet_report_files:
    report: "{{ selection | jitaccess.azure.jit_fleet_report(before=fleet.ansible_facts.azure_jit) }}"
    dest: "{{ report_dir }}"
    name: jit_audit_page
    formats: [markdown]
    mode: u=rw,g=r
"""

RETURN = r"""
files:
  description: The files, in the order of O(formats).
  type: list
  elements: dict
  returned: always
  contains:
    format:
      description: V(json), V(markdown) or V(html).
      type: str
    path:
      description: The file's path.
      type: str
    changed:
      description: Whether the file was written (in check mode - would be written); V(false) when it already held the same content with the same mode.
      type: bool
  sample:
    - format: json
      path: /srv/reports/jit_audit.json
      changed: true
"""

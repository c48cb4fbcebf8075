# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Standard attributes shared by the modules.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation
        indicates no change.
      - This assumes that the system controlled/queried by the module has not changed in a relevant way.
"""

    # Facts modules return facts but change nothing.
    FACTS = r"""
options: {}
attributes:
  facts:
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
"""

    ACTIONGROUPS = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/jitaccess.azure.azure) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - jitaccess.azure.azure
"""

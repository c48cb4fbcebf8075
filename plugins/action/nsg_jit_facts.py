# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Runs the nsg_jit_facts module and shows its progress while it works (see plugin_utils/_progress.py)."""

from __future__ import annotations

from ansible_collections.jitaccess.azure.plugins.plugin_utils._progress import ProgressAction


class ActionModule(ProgressAction):
    """The nsg_jit_facts module with live progress lines."""

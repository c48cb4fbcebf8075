# Copyright (c) jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The service principal of an armsim ready file, as the bench's plain scripts sign in with it."""

from __future__ import annotations


def from_ready_info(info):
    from azure.identity import ClientSecretCredential

    return ClientSecretCredential(
        info["tenant_id"],
        info["client_id"],
        info["client_secret"],
        authority=info["login_url"],
        disable_instance_discovery=True,
        connection_verify=info["ca_bundle"],
    )

# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Test-only action: call armsim's admin API from a playbook, in the worker, without a module.

    - armsim_admin:
        url: http://127.0.0.1:PORT
        calls: [{method: POST, path: /reset}, {method: POST, path: /faults, body: {...}}]

Returns ``responses`` (the JSON answers, in order). Far cheaper than ``ansible.builtin.uri``
(no module is shipped and run), which keeps many scenarios per playbook affordable.
"""

from __future__ import annotations

import json
import urllib.request

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        base = self._task.args["url"].rstrip("/")
        responses = []
        for call in self._task.args.get("calls") or []:
            body = call.get("body")
            data = None if body is None else json.dumps(body).encode()
            request = urllib.request.Request(base + call["path"], data=data, method=call.get("method", "GET"), headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback admin URL
                raw = response.read()
            responses.append(json.loads(raw) if raw else None)
        result.update(changed=False, responses=responses)
        return result

# Copyright (c) jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bench helper: append one JSON line per task (name, seconds from start to end) to BENCH_TIMER_PATH."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_timer
type: aggregate
short_description: per-task wall times for the bench harness
description: Writes one JSON line per task to the file named by BENCH_TIMER_PATH.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._path = os.environ.get("BENCH_TIMER_PATH")
        self._task = None
        self._start = None

    def _flush(self):
        if self._task is not None and self._path:
            with open(self._path, "a", encoding="utf-8") as stream:
                stream.write(json.dumps({"task": self._task, "seconds": round(time.monotonic() - self._start, 3)}) + "\n")
        self._task = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._flush()
        self._task = task.get_name()
        self._start = time.monotonic()

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats):
        self._flush()

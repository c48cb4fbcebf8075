# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Live progress of a long module run, shown while the module works.

A module cannot print while it runs: Ansible shows its result when it ends. The modules of this
collection append one JSON line per step (counts, elapsed time) to the file named by
``JITACCESS_PROGRESS_FILE``; this action plugin base creates that file (owner-only, in a private
directory), passes its name to the module and shows each line as it appears: with ``-v``, and for
a long wait at the default verbosity too. Only where the module runs on the controller (a local
connection, as every task of this collection normally does); elsewhere the module runs as usual.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash

PROGRESS_VARIABLE = "JITACCESS_PROGRESS_FILE"
POLL_SECONDS = 0.2
display = Display()


def progress_lines(text):
    """``(complete lines, rest)`` of a chunk read from the progress file: a line the module is still
    writing stays in ``rest`` for the next read."""
    *lines, rest = text.split("\n")
    return lines, rest


def format_line(line, action, host):
    """``(verbosity, text)`` of one progress line, or None for a line that is not ours."""
    try:
        entry = json.loads(line)
        verbosity, elapsed, message = int(entry["verbosity"]), float(entry["elapsed"]), str(entry["msg"])
    except (ValueError, KeyError, TypeError):
        return None
    return verbosity, "%s [%s] %.1f s: %s" % (action, host, elapsed, message)


class Tail:
    """Shows the lines of the progress file as they are appended, from a thread."""

    def __init__(self, path, action, host, show):
        self.path, self.action, self.host, self.show = path, action, host, show
        self.stop = threading.Event()
        self.rest = ""
        self.offset = 0
        self.thread = threading.Thread(target=self.run, name="jitaccess-progress", daemon=True)

    def read(self):
        with open(self.path, encoding="utf-8") as stream:
            stream.seek(self.offset)
            chunk = stream.read()
            self.offset = stream.tell()
        lines, self.rest = progress_lines(self.rest + chunk)
        for line in lines:
            shown = format_line(line, self.action, self.host)
            if shown is not None:
                self.show(*shown)

    def run(self):
        while not self.stop.wait(POLL_SECONDS):
            self.read()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.read()  # what the module wrote last


def show(verbosity, text):
    if display.verbosity >= verbosity:
        display.display(text, color=None)


class ProgressAction(ActionBase):
    """Runs the module of the same name, showing its progress lines while it runs."""

    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        wrap_async = self._task.async_val and not self._connection.has_native_async
        if wrap_async or getattr(self._connection, "transport", None) != "local":
            result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        else:
            directory = tempfile.mkdtemp(prefix="jitaccess-progress-")  # 0700
            path = os.path.join(directory, "progress.jsonl")
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            environment = self._task.environment or []
            self._task.environment = (environment if isinstance(environment, list) else [environment]) + [{PROGRESS_VARIABLE: path}]
            try:
                with Tail(path, self._task.action, (task_vars or {}).get("inventory_hostname", "?"), show):
                    result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=False))
            finally:
                self._task.environment = environment
                shutil.rmtree(directory, ignore_errors=True)
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

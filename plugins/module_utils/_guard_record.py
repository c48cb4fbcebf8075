# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The record jit_request keeps for the jit_guard callback: both ends of one protocol.

The callback creates a private file (0600, in a 0700 directory) and exports its path in
``JITACCESS_GUARD_RECORD``; jit_request appends one JSON line per opened (VM, port) right after the
initiate and before waiting, so a run interrupted mid-task still knows what to close. The callback
reads complete lines only (a half-written last line waits for the next read).
"""

from __future__ import annotations

import json
import os
import time

from ansible_collections.jitaccess.azure.plugins.module_utils._arm import as_list

RECORD_VARIABLE = "JITACCESS_GUARD_RECORD"
"""Exported by jit_guard to the modules: the file jit_request appends what it initiated to."""
MASKED = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
"""What Ansible shows for a no_log value: never a usable setting."""


# --------------------------------------------------------------------------------------------------
# Writer (jit_request)


def guard_record_lines(items, auth, now=None):
    """The JSON lines recorded for jit_guard: one per ``opened`` item, with non-secret ``auth``."""
    stamp = time.time() if now is None else now
    return "".join(json.dumps(dict(item, auth=auth, recorded_at=stamp), sort_keys=True) + "\n" for item in items)


KIND_CLOSED = "closed"
"""A line for a VM port a close deleted the rules of (``vm_id``, ``port``, ``closed_at``), so that a
later close in the same run knows the request was applied and closed, not still pending."""


KIND_WITHDRAWN = "withdrawn"
"""A line for a VM port recorded before its initiate (``vm_id``, ``port``, ``attempt``) whose initiate
Azure refused or that never started: nothing will open there, so jit_guard stops waiting for it.
Only the access recorded with the same ``attempt`` is withdrawn (not the same port opened before)."""


def withdrawn_items(items, attempt):
    """Record items withdrawing the ``opened`` items recorded with ``attempt`` before an initiate that did not happen."""
    return [{"kind": KIND_WITHDRAWN, "vm_id": item["vm_id"], "port": item["port"], "attempt": attempt} for item in items]


def closed_items(closed, closed_at):
    """Record items for jit_request's ``closed`` list, stamped with Azure's time ``closed_at``."""
    return [{"kind": KIND_CLOSED, "vm_id": item["vm_id"], "port": item["port"], "closed_at": closed_at} for item in closed]


def write_guard_record(path, items, auth):
    """Append the record lines to ``path`` in one write (O_APPEND); returns an error text or ``None``."""
    try:
        data = guard_record_lines(items, auth).encode("utf-8")
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, data)
        finally:
            os.close(descriptor)
    except (OSError, TypeError, ValueError) as exc:
        return str(exc)
    return None


def run_has_ended(path):
    """Whether the run that exported ``path`` has ended: jit_guard removes the record's directory
    when its run ends (Ctrl-C, SIGTERM, exit), so a task still running then must open nothing
    (no one would close it). False without a record (no jit_guard)."""
    return bool(path) and not os.path.isdir(os.path.dirname(path))


# --------------------------------------------------------------------------------------------------
# Reader (jit_guard)


def first_of(data, *names):
    for name in names:
        value = data.get(name)
        if value not in (None, "", []):
            return value
    return None


def sources_of(data):
    value = first_of(
        data,
        "sources",
        "source_address_prefixes",
        "allowed_source_address_prefixes",
        "source",
        "source_address_prefix",
        "allowed_source_address_prefix",
    )
    if value is None:
        return None
    return tuple(sorted({str(item) for item in as_list(value)}))


def accesses_from_opened(opened):
    """Flatten a jit_request ``opened`` list into ``(vm_id, port, sources)`` tuples.

    Tolerates the shapes the module may return: one entry per VM with ``ports`` (numbers or dicts
    with their own source), or one entry per VM and port.
    """
    accesses = []
    for entry in as_list(opened):
        if not isinstance(entry, dict):
            continue
        vm_id = first_of(entry, "vm_id", "id", "virtual_machine_id", "virtual_machine")
        if isinstance(vm_id, dict):
            vm_id = vm_id.get("id")
        if not vm_id:
            continue
        entry_sources = sources_of(entry)
        ports = entry.get("ports")
        if ports is None and first_of(entry, "port", "number") is not None:
            ports = [entry]
        for port in as_list(ports):
            if isinstance(port, dict):
                number = first_of(port, "number", "port")
                sources = sources_of(port) or entry_sources
            else:
                number, sources = port, entry_sources
            if number is None:
                continue
            accesses.append((str(vm_id), int(number), sources))
    return accesses


def parse_record(data):
    """Complete JSON lines of the record ``data`` (bytes) -> ``(entries, bytes consumed)``.

    A last line without its newline is not consumed (the module may be writing it); a line that is
    not a JSON object is skipped.
    """
    end = data.rfind(b"\n") + 1
    entries = []
    for line in data[:end].splitlines():
        try:
            entry = json.loads(line.decode("utf-8"))
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries, end


def read_closed(path):
    """``{(vm id lower, port): latest closed_at text}`` from the record's closed lines; ``{}`` when
    there is no record (no jit_guard) or it cannot be read."""
    try:
        with open(path, "rb") as stream:
            entries, _consumed = parse_record(stream.read())
    except (OSError, TypeError):
        return {}
    closed = {}
    for entry in entries:
        if entry.get("kind") == KIND_CLOSED and entry.get("vm_id") and isinstance(entry.get("port"), int):
            key = (str(entry["vm_id"]).lower(), entry["port"])
            closed[key] = max(closed.get(key, ""), str(entry.get("closed_at") or ""))
    return closed

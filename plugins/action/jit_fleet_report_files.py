# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Writes a jit_fleet report as JSON, Markdown and HTML files on the controller, in the worker:
no module run (documentation: ``plugins/modules/jit_fleet_report_files.py``)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.jitaccess.azure.plugins.filter.jit_fleet import jit_fleet_report_documents
from ansible_collections.jitaccess.azure.plugins.plugin_utils._files import FileError, parse_mode, write_file

FORMATS = {"json": "json", "markdown": "md", "html": "html"}
"""Each format's key in jit_fleet_report_documents and its file extension."""

ARGUMENT_SPEC = {
    "dest": {"type": "path", "required": True},
    "name": {"type": "str", "default": "jit_fleet_report"},
    "formats": {"type": "list", "elements": "str", "choices": list(FORMATS), "default": list(FORMATS)},
    "mode": {"type": "raw", "default": "0600"},
}


def _kind(value):
    """The Python type a user would recognise (Ansible's templated values are tagged subclasses)."""
    return next(cls.__name__ for cls in type(value).__mro__ if cls.__module__ == "builtins")


class ActionModule(ActionBase):
    """Render the report once, then write one file per format (atomically, with its mode)."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        if getattr(self._connection, "transport", None) != "local":
            result.update(failed=True, msg="jit_fleet_report_files writes on the controller: run it on localhost (connection: local) or delegate_to: localhost")
            return result
        # The report is checked apart: the validator deep-copies what it validates, and a report of
        # 10,000 VMs takes seconds to copy.
        args = dict(self._task.args)
        report = args.pop("report", None)
        validation = ArgumentSpecValidator(ARGUMENT_SPEC).validate(args)
        problems = list(validation.error_messages)
        if not isinstance(report, Mapping):
            problems.insert(0, "report must be a dictionary (a report from the jitaccess.azure.jit_fleet_report filter), got %s" % _kind(report))
        if problems:
            result.update(failed=True, msg="; ".join(problems))
            return result
        args = validation.validated_parameters
        name = args["name"]
        if not name or name in (".", "..") or "/" in name or "\0" in name:
            result.update(failed=True, msg="name must be a plain file name (no '/'), got %r" % name)
            return result
        try:
            mode = parse_mode(args["mode"])
        except FileError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        dest = args["dest"]
        check_mode = bool(self._task.check_mode)
        formats = list(dict.fromkeys(args["formats"]))  # in the order given, once each
        if not os.path.isdir(dest):
            if check_mode and not os.path.lexists(dest):  # a task before would have created it
                files = [{"format": fmt, "path": os.path.join(dest, "%s.%s" % (name, FORMATS[fmt])), "changed": True} for fmt in formats]
                result.update(changed=True, files=files)
                return result
            result.update(failed=True, msg="dest %s is not a directory (create it first)" % dest)
            return result
        documents = jit_fleet_report_documents(report)
        files = []
        for fmt in formats:
            path = os.path.join(dest, "%s.%s" % (name, FORMATS[fmt]))
            try:
                changed = write_file(path, documents[fmt].encode("utf-8"), mode, check_mode=check_mode)
            except FileError as exc:
                result.update(failed=True, msg=str(exc), files=files, changed=any(item["changed"] for item in files))
                return result
            files.append({"format": fmt, "path": path, "changed": changed})
        result.update(changed=any(item["changed"] for item in files), files=files)
        return result

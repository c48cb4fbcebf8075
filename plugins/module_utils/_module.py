# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""AzureJitModule: AnsibleModule plus the shared auth options, the ARM I/O layer and clean failures."""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import os
import signal
import sys
import threading
import time
import traceback

from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.jitaccess.azure.plugins.module_utils import _api, _auth
from ansible_collections.jitaccess.azure.plugins.module_utils._arm import JitValidationError, describe_error, error_details, scrub, whole_number

try:
    from azure.core.exceptions import AzureError
except ImportError:  # reported by AzureJitModule via missing_required_lib

    class AzureError(Exception):
        """Stand-in so ``except AzureError`` stays valid when the SDK is missing."""


_PROGRESS_VARIABLE = "JITACCESS_PROGRESS_FILE"  # plugin_utils/_progress.py sets it
WAIT_HEARTBEAT = 30
"""Seconds between the lines a long wait shows at the default verbosity."""

VM_REFERENCE_OPTIONS = dict(id=dict(type="str"), name=dict(type="str"), resource_group=dict(type="str"))


def vm_references(required=True, **extra_options):
    """The ``virtual_machines`` option every module shares: a list of ``{id}`` or ``{name,
    resource_group}`` (plus ``extra_options``, such as per-VM ``ports``), with its constraints
    declared rather than checked by hand."""
    options = copy.deepcopy(VM_REFERENCE_OPTIONS)
    options.update(extra_options)
    spec = dict(
        type="list",
        elements="dict",
        options=options,
        mutually_exclusive=[["id", "name"], ["id", "resource_group"]],
        required_one_of=[["id", "name"]],
        required_together=[["name", "resource_group"]],
    )
    if required:
        spec["required"] = True
    return spec


STRICT_NUMBER = "ASCII digits 0-9 without sign, separator or decimal point"


def loose_numbers(spec, raw, path=""):
    """Messages for ``int`` options whose value as the user gave it (``raw``) is not a plain whole
    number. Ansible's own conversion takes ``"２２"``, ``"+22"``, ``"1_000"``, ``"22.0"`` and
    ``"1e3"``; every number this collection reads goes through :func:`_arm.whole_number` instead."""
    problems = []
    for name, option in spec.items():
        value = raw.get(name) if isinstance(raw, dict) else None
        if value is None:
            continue
        label = path + name
        kind, elements = option.get("type", "str"), option.get("elements")
        numbers = [value] if kind == "int" else (value if kind == "list" and elements == "int" and isinstance(value, list) else [])
        for number in numbers:
            try:
                whole_number(number, label, STRICT_NUMBER)
            except JitValidationError as exc:
                problems.append(str(exc))
        if option.get("options"):
            items = value if isinstance(value, list) else [value]
            for index, item in enumerate(items):
                problems.extend(loose_numbers(option["options"], item, "%s[%d]." % (label, index) if kind == "list" else label + "."))
    return problems


def end_at_interrupt():
    """Make Ctrl-C end the module run at once, as SIGTERM does. Ansible's worker passes the signal on
    to its process group, this module included. Python's KeyboardInterrupt would unwind the main
    thread only, then wait for the ARM calls still in flight in the other threads (seconds under
    latency): a module that outlives its run. A module has nothing to clean up: jit_guard closes what
    the run opened. A run that ignores SIGINT (nohup) keeps ignoring it."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.SIG_DFL)


GC_THRESHOLDS = (100000, 50, 100)
"""Cyclic garbage collector thresholds for module runs (Python's default is 700, 10, 10)."""


class AzureJitModule:
    """Thin wrapper: modules declare their own options; auth options are added here."""

    def __init__(self, argument_spec, **kwargs):
        # A module run is a short process that turns ARM JSON into millions of small containers and
        # keeps them until it exits. With the default thresholds the collector rescans them again
        # and again: a third of nsg_jit_facts' time on a 10,000-VM fleet. The data has no cycles.
        gc.set_threshold(*GC_THRESHOLDS)
        end_at_interrupt()
        self.started = time.monotonic()
        self._progress_lock = threading.Lock()
        self._wait_started = self._last_heartbeat = None
        spec = copy.deepcopy(_auth.AUTH_ARGUMENT_SPEC)
        spec.update(argument_spec)
        kwargs.setdefault("supports_check_mode", True)
        self.module = AnsibleModule(argument_spec=spec, **kwargs)
        # From here on every message and result is scrubbed of the run's secrets, whatever their
        # source (option, environment, credential file) and whatever text carries them.
        self.secrets = _auth.known_secrets(self.module.params)
        problems = loose_numbers(spec, basic._load_params())  # the values before Ansible converted them
        if problems:
            self.fail_json(msg="; ".join(problems))
        problems = _api.sdk_problems()
        if problems:
            what = "Failed to import the required" if any("not installed" in problem for problem in problems) else "jitaccess.azure needs newer"
            self.module.fail_json(
                msg="%s Azure SDK packages in %s: %s. Install them with pip install -r requirements.txt from the collection"
                " (or: pip install %s)" % (what, sys.executable, "; ".join(problems), " ".join(_api.pip_requirements())),
                sdk_problems=problems,
            )
        self._api = None

    @property
    def params(self):
        return self.module.params

    def progress(self, msg, verbosity=1):
        """One step of a long run (counts, what comes next), shown while the module still works by
        the collection's action plugin (plugins/plugin_utils/_progress.py) when it passed a progress
        file: with ``-v`` (``verbosity=1``), or always (``verbosity=0``, for a long wait). Never
        anything secret: counts, names and ids only."""
        path = os.environ.get(_PROGRESS_VARIABLE)
        if not path:
            return
        line = json.dumps({"elapsed": round(time.monotonic() - self.started, 1), "verbosity": verbosity, "msg": scrub(str(msg), self.secrets)})
        with self._progress_lock:  # writer threads (side-by-side writes) report too
            try:  # the file the action plugin created; never create one elsewhere
                descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
            except OSError:
                return
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                stream.write(line + "\n")

    def wait_progress(self, text):
        """A polling round's line: each round with ``-v``; at the default verbosity too every
        :data:`WAIT_HEARTBEAT` seconds once the wait has lasted that long (a long wait shows it is
        alive without a line per round)."""
        now = time.monotonic()
        if self._wait_started is None:
            self._wait_started = self._last_heartbeat = now
        loud = now - self._last_heartbeat >= WAIT_HEARTBEAT
        if loud:
            self._last_heartbeat = now
        self.progress("%s (waiting %d s)" % (text, now - self._wait_started), verbosity=0 if loud else 1)

    @property
    def check_mode(self):
        return self.module.check_mode

    @property
    def diff_mode(self):
        return self.module._diff

    def exit_json(self, **result):
        self.module.exit_json(**scrub(result, self.secrets))

    def fail_json(self, msg, **result):
        self.module.fail_json(**scrub(dict(result, msg=msg), self.secrets))

    def warn(self, message):
        self.module.warn(scrub(message, self.secrets))

    @contextlib.contextmanager
    def failing_cleanly(self):
        """Turn an unexpected exception into a failed result with a scrubbed message (and the
        scrubbed traceback under ``traceback`` for a bug report), instead of Ansible's raw one."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - exit_json/fail_json raise SystemExit, which passes
            trace = traceback.format_exc()
            self.fail_json(msg="unexpected error (%s): %s" % (type(exc).__name__, exc), traceback=trace)

    @property
    def api(self):
        """The ARM I/O layer; the credential is built on first use, so validation fails before any login."""
        if self._api is None:
            try:
                self._api = _api.connect(self.params)
            except _auth.AuthError as exc:
                self.fail_json(msg="Azure authentication: %s" % exc)
            except AzureError as exc:  # listing subscriptions for a managed identity
                self.fail_azure(exc, "find the managed identity's subscription")
            for notice in self._api.notices:
                self.warn(notice)
        return self._api

    @property
    def subscription_id(self):
        """The configured (default) subscription; the module fails cleanly when there is none."""
        if not self.api.subscription_id:
            self.fail_json(msg="Azure authentication: subscription_id is required (option, AZURE_SUBSCRIPTION_ID or the credential file)")
        return self.api.subscription_id

    @property
    def default_subscription_id(self):
        """The configured subscription, or None: VMs named by id carry their own."""
        return self.api.subscription_id

    def azure_call(self, action, function, *args, **kwargs):
        """Run one SDK call; any Azure error ends the module with a clean, specific message."""
        try:
            return function(*args, **kwargs)
        except AzureError as exc:
            self.fail_azure(exc, action)

    def fail_azure(self, exc, action, **result):
        self.fail_json(msg=describe_error(exc, action), error=error_details(exc), **result)

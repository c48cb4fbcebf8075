# Copyright (c) 2026 jitaccess.azure contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""jit_guard: close every JIT access this run opened and left open, however the run ends."""

from __future__ import annotations

DOCUMENTATION = r"""
name: jit_guard
type: aggregate
short_description: Close the JIT access a playbook run opened, however the run ends
version_added: 0.1.0
description:
  - Records every access that M(jitaccess.azure.jit_request) opened during the run (from the
    C(opened) list of its results) and, when the run ends, closes whatever is still open exactly
    as O(jitaccess.azure.jit_request#module:state=absent) does - by deleting the JIT allow rules
    that admit those ports and sources to those VMs on every NSG on their path. JIT deny rules and
    every other rule are never touched.
  - It closes on a normal end and on a failed run (when the final statistics are sent), on
    C(SIGINT) (Ctrl-C) and C(SIGTERM) (before Ansible's own handlers stop the workers), and as a
    last resort when the controller process exits. It says what it closed in the output.
  - Accesses that a later C(jit_request state=absent) task closed are dropped from its list.
    Accesses that were already open before the run (the task reported no change) are not its to close.
  - This is a safety net for what C(block)/C(always) cannot cover (Ctrl-C, SIGTERM from a CI
    runner, every host unreachable). The request's duration remains the last guarantee, keep it short.
    C(SIGKILL) and a lost controller cannot be caught by any plugin.
  - Enable it with C(callbacks_enabled = jitaccess.azure.jit_guard) in the C([defaults]) section
    of C(ansible.cfg), or with E(ANSIBLE_CALLBACKS_ENABLED=jitaccess.azure.jit_guard).
  - Credentials are resolved like the modules' (same options, same environment variables and
    credential file); the subscription is taken from each VM id. When the C(jit_request) tasks
    pass non-secret authentication options (O(jitaccess.azure.jit_request#module:tenant),
    O(jitaccess.azure.jit_request#module:client_id), ...), the values they used are reused; a secret
    is never read from task results, so provide it through the environment, the credential file or
    this plugin's O(secret) setting. Secrets are never printed.
requirements:
  - enabled in ansible.cfg (C(callbacks_enabled)) or with E(ANSIBLE_CALLBACKS_ENABLED)
  - the same Azure SDK packages as the modules, in the Python that runs ansible-playbook
options:
  auth_source:
    description: Where the credentials come from, as the modules' O(jitaccess.azure.jit_request#module:auth_source).
    type: str
    default: auto
    choices: [auto, env, cli, credential_file, msi, default]
    env:
      - name: ANSIBLE_AZURE_AUTH_SOURCE
    ini:
      - section: jit_guard
        key: auth_source
  profile:
    description: Section of C(~/.azure/credentials) to read.
    type: str
    env:
      - name: AZURE_PROFILE
    ini:
      - section: jit_guard
        key: profile
  client_id:
    description: Application (client) ID of the service principal or user-assigned identity.
    type: str
    env:
      - name: AZURE_CLIENT_ID
    ini:
      - section: jit_guard
        key: client_id
  secret:
    description: Client secret of the service principal. Never printed.
    type: str
    env:
      - name: AZURE_SECRET
      - name: AZURE_CLIENT_SECRET
  tenant:
    description: Directory (tenant) ID of the service principal.
    type: str
    env:
      - name: AZURE_TENANT
      - name: AZURE_TENANT_ID
    ini:
      - section: jit_guard
        key: tenant
  x509_certificate_path:
    description: PEM file with the service principal's certificate and key, instead of O(secret).
    type: path
    env:
      - name: AZURE_X509_CERTIFICATE_PATH
      - name: AZURE_CLIENT_CERTIFICATE_PATH
    ini:
      - section: jit_guard
        key: x509_certificate_path
  cloud_environment:
    description: Cloud name or https ARM metadata URL, as the modules' option.
    type: str
    default: AzureCloud
    env:
      - name: AZURE_CLOUD_ENVIRONMENT
    ini:
      - section: jit_guard
        key: cloud_environment
  disable_instance_discovery:
    description: Skip Entra ID instance discovery (private authorities).
    type: bool
    default: false
    env:
      - name: AZURE_DISABLE_INSTANCE_DISCOVERY
    ini:
      - section: jit_guard
        key: disable_instance_discovery
  close_signals:
    description:
      - Close on these signals before Ansible handles them. Set to an empty list to close only at
        the end of the run and at process exit.
    type: list
    elements: str
    default: [SIGINT, SIGTERM]
    env:
      - name: JIT_GUARD_CLOSE_SIGNALS
    ini:
      - section: jit_guard
        key: close_signals
"""

import atexit  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

from ansible import context  # noqa: E402
from ansible.plugins.callback import CallbackBase  # noqa: E402

from ansible_collections.jitaccess.azure.plugins.module_utils import _auth  # noqa: E402
from ansible_collections.jitaccess.azure.plugins.module_utils._arm import describe_error  # noqa: E402
from ansible_collections.jitaccess.azure.plugins.module_utils._close import close_access  # noqa: E402
from ansible_collections.jitaccess.azure.plugins.module_utils._jit import normalize_id, parse_resource_id  # noqa: E402

JIT_REQUEST_ACTIONS = ("jitaccess.azure.jit_request", "jit_request")
AUTH_KEYS = ("auth_source", "profile", "client_id", "tenant", "x509_certificate_path", "cloud_environment", "disable_instance_discovery")
"""Non-secret authentication settings reused from the jit_request invocation."""

MASKED = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def _as_list(value):
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _first(data, *names):
    for name in names:
        value = data.get(name)
        if value not in (None, "", []):
            return value
    return None


def _sources_of(data):
    value = _first(
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
    return tuple(sorted({str(item) for item in _as_list(value)}))


def accesses_from_opened(opened):
    """Flatten a jit_request ``opened`` list into ``(vm_id, port, sources)`` tuples.

    Tolerates the shapes the module may return: one entry per VM with ``ports`` (numbers or dicts
    with their own source), or one entry per VM and port.
    """
    accesses = []
    for entry in _as_list(opened):
        if not isinstance(entry, dict):
            continue
        vm_id = _first(entry, "vm_id", "id", "virtual_machine_id", "virtual_machine")
        if isinstance(vm_id, dict):
            vm_id = vm_id.get("id")
        if not vm_id:
            continue
        entry_sources = _sources_of(entry)
        ports = entry.get("ports")
        if ports is None and _first(entry, "port", "number") is not None:
            ports = [entry]
        for port in _as_list(ports):
            if isinstance(port, dict):
                number = _first(port, "number", "port")
                sources = _sources_of(port) or entry_sources
            else:
                number, sources = port, entry_sources
            if number is None:
                continue
            accesses.append((str(vm_id), int(number), sources))
    return accesses


def vm_keys_from_args(args):
    """``(subscription or None, resource group, name)`` lower-cased for each VM a task named."""
    keys = []
    for reference in _as_list(args.get("virtual_machines")):
        entry = reference
        if isinstance(entry, str):
            entry = {"id": entry} if entry.startswith("/") else {"name": entry}
        if not isinstance(entry, dict):
            continue
        if entry.get("id"):
            try:
                parsed = parse_resource_id(entry["id"])
            except ValueError:
                continue
            keys.append((parsed.subscription.lower(), parsed.resource_group.lower(), parsed.name.lower()))
        elif entry.get("name"):
            keys.append((None, str(entry.get("resource_group") or "").lower(), str(entry["name"]).lower()))
    return keys


def _vm_key(vm_id):
    parsed = parse_resource_id(vm_id)
    return (parsed.subscription.lower(), parsed.resource_group.lower(), parsed.name.lower())


def _key_matches(named, vm_id):
    subscription, group, name = _vm_key(vm_id)
    named_subscription, named_group, named_name = named
    return named_name == name and (not named_group or named_group == group) and (named_subscription in (None, subscription))


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "jitaccess.azure.jit_guard"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super().__init__(display=display)
        self._pid = os.getpid()
        self._open = {}  # (vm id lower, port, sources) -> {"vm_id", "port", "sources", "auth"}
        self._recorded = 0
        self._lock = threading.RLock()
        self._closing = False
        self._previous_handlers = {}
        self._signals_installed = False
        atexit.register(self._at_exit)

    # ------------------------------------------------------------------ options and signals

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self._install_signal_handlers()

    def _install_signal_handlers(self):
        if self._signals_installed or threading.current_thread() is not threading.main_thread():
            return
        self._signals_installed = True
        for name in self.get_option("close_signals") or []:
            signum = getattr(signal, str(name).upper(), None)
            if not isinstance(signum, signal.Signals):
                self._display.warning("jit_guard: unknown signal %r in close_signals (use SIGINT, SIGTERM, SIGHUP...)" % name)
                continue
            self._previous_handlers[signum] = signal.getsignal(signum)
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame):
        previous = self._previous_handlers.get(signum, signal.SIG_DFL)
        if os.getpid() == self._pid:
            if self._closing:
                self._say("jit_guard: %s received while closing JIT access; still closing" % signal.Signals(signum).name)
                return
            if self._open:
                self._close_all("%s received" % signal.Signals(signum).name)
        # Hand over to whoever handled this signal before (Ansible stops its workers there).
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def _at_exit(self):
        if os.getpid() == self._pid and self._open:
            self._close_all("the controller is exiting")

    # ------------------------------------------------------------------ recording

    @staticmethod
    def _is_jit_request(task):
        names = {getattr(task, "resolved_action", None), task.action}
        return any(name in JIT_REQUEST_ACTIONS for name in names if name)

    def _check_mode(self, task):
        if task.check_mode is not None:
            return bool(task.check_mode)
        return bool(context.CLIARGS.get("check"))

    def _observe(self, result):
        task = result._task
        if not self._is_jit_request(task) or self._check_mode(task):
            return
        data = result._result
        for item in data.get("results") or [data]:
            if isinstance(item, dict):
                self._observe_one(item, task)

    def _observe_one(self, data, task):
        args = dict(task.args or {})
        invocation = (data.get("invocation") or {}).get("module_args") or {}
        args.update({key: value for key, value in invocation.items() if value is not None})
        state = str(args.get("state") or "present")
        if state == "absent":
            self._forget(args, data)
        elif data.get("opened") and (data.get("changed") or data.get("failed")):
            auth = {key: invocation.get(key) for key in AUTH_KEYS if invocation.get(key) not in (None, MASKED)}
            with self._lock:
                for vm_id, port, sources in accesses_from_opened(data["opened"]):
                    self._open[(normalize_id(vm_id), port, sources)] = {"vm_id": vm_id, "port": port, "sources": sources, "auth": auth}
                    self._recorded += 1

    def _forget(self, args, data):
        """A jit_request state=absent closed these: they are no longer ours to close."""
        if data.get("failed"):
            return
        named = vm_keys_from_args(args)
        for entry in _as_list(data.get("closed")):
            if isinstance(entry, dict) and _first(entry, "vm_id", "id"):
                named.append(_vm_key(_first(entry, "vm_id", "id")))
        ports = {int(port["number"] if isinstance(port, dict) else port) for port in _as_list(args.get("ports"))} or None
        sources = _sources_of(args)
        with self._lock:
            for key, access in list(self._open.items()):
                if not any(_key_matches(item, access["vm_id"]) for item in named):
                    continue
                if ports is not None and access["port"] not in ports:
                    continue
                if sources is not None and access["sources"] is not None and set(sources) != set(access["sources"]):
                    continue
                del self._open[key]

    def v2_runner_on_ok(self, result):
        self._observe(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._observe(result)

    def v2_runner_item_on_ok(self, result):
        self._observe(result)

    def v2_runner_item_on_failed(self, result):
        self._observe(result)

    def v2_playbook_on_stats(self, stats):
        if self._open:
            self._close_all("the run ended")
        elif self._recorded:
            self._say("jit_guard: the playbook closed every JIT access it opened (%d); nothing left to close" % self._recorded, color="bright purple")

    # ------------------------------------------------------------------ closing

    def _say(self, message, color=None):
        try:
            self._display.display(message, color=color)
        except Exception:  # noqa: BLE001 - inside a signal handler stdout may be mid-write
            os.write(sys.__stderr__.fileno(), (message + "\n").encode("utf-8", "replace"))

    def _settings(self, auth):
        params = {key: None for key in _auth.AUTH_ARGUMENT_SPEC}
        for key in params:
            if key == "subscription_id":
                continue
            try:
                params[key] = self.get_option(key)
            except KeyError:
                params[key] = None
        params.update(auth)
        return params

    def _close_all(self, reason):
        with self._lock:
            if self._closing or not self._open:
                return
            self._closing = True
            accesses = list(self._open.values())
        try:
            self._close(accesses, reason)
        finally:
            with self._lock:
                self._closing = False

    def _close(self, accesses, reason):
        count = len(accesses)
        self._say("jit_guard: %s; closing %d JIT access%s this run opened" % (reason, count, "" if count == 1 else "es"), color="bright purple")
        missing = _auth.missing_libraries()
        if missing:
            self._say("jit_guard: cannot close: the Azure SDK (%s) is not importable by the controller's Python" % ", ".join(missing), color="red")
            return
        groups = {}
        for access in accesses:
            subscription = parse_resource_id(access["vm_id"]).subscription
            auth_key = (subscription.lower(), tuple(sorted(access["auth"].items())))
            groups.setdefault(auth_key, (subscription, access["auth"], []))[2].append(access)
        for subscription, auth, members in groups.values():
            self._close_group(subscription, auth, members)

    def _close_group(self, subscription, auth, accesses):
        errors = []

        def call(action, function, *args, **kwargs):
            try:
                return function(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - report every failure, keep closing the rest
                errors.append(describe_error(exc, action))
                return None

        targets = {}
        for access in accesses:
            key = (normalize_id(access["vm_id"]), access["sources"])
            targets.setdefault(key, {"vm_id": access["vm_id"], "ports": [], "sources": list(access["sources"]) if access["sources"] else None})
            targets[key]["ports"].append(access["port"])
        try:
            settings = _auth.resolve_settings(self._settings(auth))
            cloud = _auth.resolve_cloud(settings.get("cloud_environment"))
            clients = _auth.AzureClients(_auth.build_credential(settings, cloud), subscription, cloud)
            deleted, planned, unknown, kept = close_access(clients, call, list(targets.values()))
        except _auth.AuthError as exc:
            errors.append("authentication: %s" % exc)
            deleted, planned, unknown, kept = [], [], [], []
        except Exception as exc:  # noqa: BLE001 - never let the safety net raise
            errors.append(describe_error(exc, "closing JIT access"))
            deleted, planned, unknown, kept = [], [], [], []
        for rule in deleted:
            self._say(
                "jit_guard: closed %s port %s from %s (deleted %s on NSG %s)"
                % (rule["vm_name"], ",".join(rule["ports"]), ",".join(rule["sources"]), rule["rule_name"], rule["nsg_name"]),
                color="bright purple",
            )
        failed = [rule for rule in planned if rule not in deleted]
        if not errors and not failed:
            with self._lock:
                for access in accesses:
                    self._open.pop((normalize_id(access["vm_id"]), access["port"], access["sources"]), None)
            if not planned:
                self._say("jit_guard: nothing was still open (closed earlier or expired)", color="bright purple")
            else:
                self._say("jit_guard: all JIT access opened by this run is closed", color="bright purple")
        for rule in kept:
            self._say("jit_guard: left JIT allow rule %s on %s: %s" % (rule["rule_name"], rule["nsg_id"].rsplit("/", 1)[-1], rule["reason"]), color="red")
        for vm_id in unknown:
            self._say("jit_guard: VM %s no longer exists; nothing to close" % vm_id, color="bright purple")
        for error in errors:
            self._say("jit_guard: could not close everything: %s" % error, color="red")
        if errors or failed:
            self._say(
                "jit_guard: %d rule(s) may still be open; they expire with their request. Close them with jitaccess.azure.jit_request state=absent"
                % max(len(failed), 1),
                color="red",
            )

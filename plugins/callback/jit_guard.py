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
  - It also knows access whose task never returned. When loaded, it creates a private record file
    (in a new directory only the user can read) and exports its path as E(JITACCESS_GUARD_RECORD)
    to the modules it runs. M(jitaccess.azure.jit_request) appends what it opens to that file
    before its C(initiate) when it knows the source (an explicit source, the policy's or Bastion's),
    else right after each successful C(initiate), before it waits for the rules. So when the run is
    interrupted while the module is still waiting, the callback closes that access too. The
    record holds the C(opened) items (VM, ports, sources, policy, NSGs, private IPs) and
    non-secret authentication options, never a secret. The directory is removed when the
    controller exits.
  - For access whose allow rules are not there yet (initiated, not yet applied by Defender for
    Cloud, or requested with O(jitaccess.azure.jit_request#module:wait=false)), it polls those
    VMs' NSGs for up to O(pending_timeout) seconds and deletes the rules as they appear.
  - Accesses that a later C(jit_request state=absent) task closed are dropped from its list
    (recorded ones included).
    Accesses that were already open before the run (the task reported no change) are not its to close.
  - This is a safety net for what C(block)/C(always) cannot cover (Ctrl-C, SIGTERM from a CI
    runner, every host unreachable). The request's duration remains the last guarantee, keep it short.
    C(SIGKILL) and a lost controller cannot be caught by any plugin; for those, open access with
    O(jitaccess.azure.jit_request#module:lease).
  - Leases. Access opened with O(jitaccess.azure.jit_request#module:lease) is requested for one
    lease at a time; while the run is alive this plugin renews it (one C(initiate) per JIT policy,
    for every lease of that policy that ends within its margin), from the source Azure recorded,
    never past the requested duration. It checks each policy holding a lease every
    O(lease_check_interval) seconds (one GET) and judges time by Azure's clock. A lease whose
    request was closed, expired or replaced by another party's request is not renewed. When the
    controller dies the renewals stop, and Azure ends the access within one lease.
  - Enable it with C(callbacks_enabled = jitaccess.azure.jit_guard) in the C([defaults]) section
    of C(ansible.cfg), or with E(ANSIBLE_CALLBACKS_ENABLED=jitaccess.azure.jit_guard).
  - Credentials are resolved like the modules' (same options, same environment variables and
    credential file); the subscription is taken from each VM id. When the C(jit_request) tasks
    pass non-secret authentication options (O(jitaccess.azure.jit_request#module:tenant),
    O(jitaccess.azure.jit_request#module:client_id), ...), the values they used are reused; a secret
    is never read from task results, so provide it through the environment, the credential file or
    this plugin's O(secret) setting. Secrets are never printed; every line it prints is scrubbed of
    the secret, password and certificate password from every source.
  - When it cannot close everything (an error, a rule that could not be deleted, a rule that had
    not appeared by O(pending_timeout)), it says what may still be open and the run exits with
    code 2, even if every task succeeded, because access may still be open.
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
  x509_certificate_password:
    description: Password of the private key in O(x509_certificate_path), when it is encrypted. Never printed.
    type: str
    version_added: 0.2.0
    env:
      - name: AZURE_CLIENT_CERTIFICATE_PASSWORD
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
  ad_user:
    description: User principal name for a user and password sign-in, as the modules' option.
    type: str
    version_added: 0.2.0
    env:
      - name: AZURE_AD_USER
    ini:
      - section: jit_guard
        key: ad_user
  password:
    description: Password of O(ad_user). Never printed.
    type: str
    version_added: 0.2.0
    env:
      - name: AZURE_PASSWORD
  adfs_authority_url:
    description: Sign in at this ADFS authority instead of the cloud's, as the modules' option.
    type: str
    version_added: 0.2.0
    env:
      - name: AZURE_ADFS_AUTHORITY_URL
    ini:
      - section: jit_guard
        key: adfs_authority_url
  thumbprint:
    description: SHA-1 thumbprint the certificate in O(x509_certificate_path) must have.
    type: str
    version_added: 0.2.0
    env:
      - name: AZURE_THUMBPRINT
    ini:
      - section: jit_guard
        key: thumbprint
  pending_timeout:
    description:
      - When closing, wait up to this many seconds (from the start of the close) for the allow
        rules of access that was initiated but not yet applied, and delete them as they appear.
        V(0) closes only the rules already there.
    type: int
    default: 30
    env:
      - name: JIT_GUARD_PENDING_TIMEOUT
    ini:
      - section: jit_guard
        key: pending_timeout
  lease_check_interval:
    description:
      - How often, in seconds, to check the leases of access opened with
        O(jitaccess.azure.jit_request#module:lease) (one GET of each JIT policy holding a lease per
        check; never more often than needed, at most a third of the renewal margin apart).
    type: float
    default: 30
    version_added: 0.2.0
    env:
      - name: JIT_GUARD_LEASE_CHECK_INTERVAL
    ini:
      - section: jit_guard
        key: lease_check_interval
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
import contextlib  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

from ansible import context  # noqa: E402
from ansible.plugins.callback import CallbackBase  # noqa: E402

from ansible_collections.jitaccess.azure.plugins.module_utils import _api, _auth  # noqa: E402
from ansible_collections.jitaccess.azure.plugins.module_utils._arm import (  # noqa: E402
    as_list,
    describe_error,
    format_azure_datetime,
    normalize_id,
    parse_azure_datetime,
    parse_resource_id,
    scrub,
)
from ansible_collections.jitaccess.azure.plugins.module_utils._close import delete_rules, plan_close, read_close_state  # noqa: E402
from ansible_collections.jitaccess.azure.plugins.module_utils._guard_record import (  # noqa: E402
    KIND_CLOSED,
    KIND_WITHDRAWN,
    MASKED,
    RECORD_VARIABLE,
    accesses_from_opened,
    parse_record,
    sources_of,
)
from ansible_collections.jitaccess.azure.plugins.module_utils._lease import RENEW_DONE, RENEW_DUE, RENEW_LOST, Lease, renewal_body, renewal_state  # noqa: E402
from ansible_collections.jitaccess.azure.plugins.module_utils._nsg import source_set  # noqa: E402
from ansible_collections.jitaccess.azure.plugins.module_utils._request import (  # noqa: E402
    APPLY_WINDOW_SECONDS,
    default_justification,
    lease_renew_before,
    server_time,
)
from ansible_collections.jitaccess.azure.plugins.module_utils._topology import read_nsgs  # noqa: E402
from ansible_collections.jitaccess.azure.plugins.module_utils._wait import backoff_delays, wait_until  # noqa: E402

JIT_REQUEST_ACTIONS = ("jitaccess.azure.jit_request", "jit_request")
_UTC = timezone.utc  # noqa: UP017 - keep the plugin importable on older Pythons
UNCLOSED_EXIT_CODE = 2
"""Exit code of a run whose guard could not close everything it opened (Ansible's "host failed")."""
AUTH_KEYS = _auth.NON_SECRET_AUTH_KEYS
"""Non-secret authentication settings reused from the jit_request invocation."""

ORIGIN_RECORD = "record"
ORIGIN_RESULT = "result"


def path_of(entry):
    """Lower-cased ids of the NSGs on the VM's path, from an ``opened`` item; ``None`` when unknown."""
    nsg_ids = entry.get("nsg_ids") if isinstance(entry, dict) else None
    return {normalize_id(nsg_id) for nsg_id in nsg_ids} if nsg_ids else None


def merge_record(open_accesses, entries):
    """Add recorded ``opened`` items to ``open_accesses`` (key -> access) as pending accesses.

    What a task result already reported (or what is already known) wins: an entry only adds a VM
    port that is not there yet. Returns the keys added.
    """
    known = {(key[0], key[1]) for key in open_accesses}
    added = []
    for entry in entries:
        if entry.get("kind") == KIND_CLOSED:
            # a close deleted its rules: never renew it again (results say what leaves the ledger, see _forget)
            vm_port = (normalize_id(str(entry.get("vm_id") or "")), entry.get("port"))
            for key, access in open_accesses.items():
                if (key[0], key[1]) == vm_port:
                    access["renew"] = False
            continue
        if entry.get("kind") == KIND_WITHDRAWN:
            # recorded before an initiate that Azure refused or that never started: nothing to wait for
            vm_port = (normalize_id(str(entry.get("vm_id") or "")), entry.get("port"))
            # (only the access that very record added: the same VM port opened earlier stays)
            attempt = entry.get("attempt")
            for key in [key for key, access in open_accesses.items() if (key[0], key[1]) == vm_port and attempt and access.get("attempt") == attempt]:
                del open_accesses[key]
                known.discard(vm_port)
            continue
        if entry.get("kind"):
            continue  # a kind of line this version does not know
        auth = entry.get("auth") if isinstance(entry.get("auth"), dict) else {}
        auth = {key: value for key, value in auth.items() if key in AUTH_KEYS and value not in (None, MASKED)}
        for vm_id, port, sources in accesses_from_opened([entry]):
            key = (normalize_id(vm_id), port, sources)
            lease = lease_of(entry, sources)
            if (key[0], port) in known:
                # initiated again (force, renewal) after a result reported it: its new rules may come later
                for other_key, access in open_accesses.items():
                    if (other_key[0], other_key[1]) == (key[0], port):
                        access.update(pending=True, lease=lease or access.get("lease"), renew=True)
                continue
            known.add((key[0], port))
            open_accesses[key] = {
                "vm_id": vm_id,
                "port": port,
                "sources": sources,
                "auth": auth,
                "pending": True,
                "origin": ORIGIN_RECORD,
                "attempt": entry.get("attempt"),  # set when recorded before the initiate (may be withdrawn)
                "sites": path_of(entry),  # NSGs where a rule may still be open
                "lease": lease,
                "renew": True,
            }
            added.append(key)
    return added


def lease_of(entry, sources):
    """The :class:`Lease` of an ``opened`` item, when it has one and one recorded source."""
    if not isinstance(entry, dict) or not entry.get("lease") or not sources or len(sources) != 1:
        return None
    return Lease.from_opened(entry, sources[0])


def rule_sites(record, access, rules):
    """NSG ids (lower) on the VM's path where ``rules`` (planned/kept by plan_close) show the access applied."""
    vm_key = normalize_id(access["vm_id"])
    sites = set()
    for rule in rules:
        if normalize_id(rule.get("vm_id") or "") != vm_key:
            continue
        numbers = rule.get("port_numbers")
        if numbers is not None and access["port"] not in numbers:
            continue
        sites.add(normalize_id(rule["nsg_id"]))
    return sites & {normalize_id(nsg_id) for nsg_id in record.get("nsg_ids") or []}


def missing_sites(record, access, seen):
    """NSG ids (lower) on the VM's path where the access's allow rule has not been seen yet."""
    return {normalize_id(nsg_id) for nsg_id in record.get("nsg_ids") or []} - set(seen)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "jitaccess.azure.jit_guard"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super().__init__(display=display)
        self._pid = os.getpid()
        self._open = {}  # (vm id lower, port, sources) -> {"vm_id", "port", "sources", "auth", "pending", "origin"}
        self._known = set()  # every (vm id lower, port) recorded during the run
        self._record_path = None
        self._record_offset = 0
        self._lock = threading.RLock()
        self._closing = False
        self._previous_handlers = {}
        self._signals_installed = False
        self._secrets = []  # scrubbed from every line this plugin prints
        self._unclosed = False  # set when access may still be open: the run must not end with 0
        self._task_started = {}  # task uuid -> monotonic time its first host started
        self._renewals = None  # the lease thread, started with the first jit_request task
        self._stop_renewals = threading.Event()
        self._lease_apis = {}
        atexit.register(self._at_exit)

    # ------------------------------------------------------------------ options and signals

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self._install_signal_handlers()
        self._start_record()

    @property
    def _recorded(self):
        return len(self._known)

    def _start_record(self):
        """Create the private record file and export its path to the modules (workers fork from here)."""
        if self._record_path or os.getpid() != self._pid:
            return
        try:
            directory = tempfile.mkdtemp(prefix="jit_guard-")  # mode 0700
            path = os.path.join(directory, "opened.jsonl")
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as exc:
            self._display.warning("jit_guard: cannot create the record file (%s); access whose task is interrupted cannot be closed" % exc)
            return
        self._record_path = path
        os.environ[RECORD_VARIABLE] = path

    def _ingest_records(self):
        """Read what jit_request recorded since the last read (accesses initiated, maybe not applied yet)."""
        if not self._record_path:
            return
        with self._lock:
            try:
                with open(self._record_path, "rb") as stream:
                    stream.seek(self._record_offset)
                    data = stream.read()
            except OSError:
                return
            entries, consumed = parse_record(data)
            self._record_offset += consumed
            self._known.update((key[0], key[1]) for key in merge_record(self._open, entries))

    def _remove_record(self):
        if self._record_path and os.getpid() == self._pid:
            if os.environ.get(RECORD_VARIABLE) == self._record_path:
                del os.environ[RECORD_VARIABLE]
            shutil.rmtree(os.path.dirname(self._record_path), ignore_errors=True)
            self._record_path = None

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
            self._ingest_records()
            if self._open:
                self._close_all("%s received" % signal.Signals(signum).name)
        # Hand over to whoever handled this signal before (Ansible stops its workers there).
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def _at_exit(self):
        if os.getpid() != self._pid:
            return
        self._ingest_records()
        if self._open:
            self._close_all("the controller is exiting")
        self._remove_record()
        if self._unclosed:
            # Access this run opened may still be open: the run must not report success (an exit
            # code set by Ansible before this handler cannot be read here, so exit now with 2).
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(UNCLOSED_EXIT_CODE)

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
        self._ingest_records()  # what was recorded before this result: the result comes after it
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
            self._forget(args, data, task)
        elif data.get("opened") and (data.get("changed") or data.get("failed")):
            auth = {key: invocation.get(key) for key in AUTH_KEYS if invocation.get(key) not in (None, MASKED)}
            with self._lock:
                reported = []
                for entry in as_list(data["opened"]):
                    # the allow rules were seen when the module waited for them; else they may come later
                    pending = not (isinstance(entry, dict) and entry.get("nsg_rules"))
                    reported.extend(
                        (vm_id, port, sources, pending, path_of(entry), lease_of(entry, sources)) for vm_id, port, sources in accesses_from_opened([entry])
                    )
                vm_ports = {(normalize_id(item[0]), item[1]) for item in reported}
                for key, access in list(self._open.items()):
                    if access.get("origin") == ORIGIN_RECORD and (key[0], key[1]) in vm_ports:
                        del self._open[key]  # the result says it better (source, rules seen)
                for vm_id, port, sources, pending, sites, lease in reported:
                    key = (normalize_id(vm_id), port, sources)
                    access = {
                        "vm_id": vm_id,
                        "port": port,
                        "sources": sources,
                        "auth": auth,
                        "pending": pending,
                        "origin": ORIGIN_RESULT,
                        "sites": sites,
                        "lease": lease,
                        "renew": True,
                    }
                    self._open[key] = access
                    self._known.add((key[0], port))

    def _forget(self, args, data, task=None):
        """A jit_request state=absent ran: only what it really deleted leaves the ledger.

        The ledger holds, per (VM, port, sources), the NSGs of the VM's path where a rule may still
        be open. A port the close reports ``closed`` loses the NSGs whose rule it deleted (for
        those sources); one reported ``not_open`` (no active request, nothing applied) leaves the
        ledger when the close was not narrowed to other sources; ``pending`` (its rules may still
        come) stays, to be closed at the end of the run. A failed close changes nothing.
        """
        if data.get("failed"):
            return
        close_sources = sources_of(args)
        # a lease renewed after this close may have started (or just before: Azure may still be
        # applying it) can bring its rules back after the close deleted them: keep it, pending
        since = self._task_started.get(getattr(task, "_uuid", None), time.monotonic()) - APPLY_WINDOW_SECONDS
        with self._lock:
            for vm in as_list(data.get("virtual_machines")):
                if not isinstance(vm, dict) or not vm.get("id"):
                    continue
                for port in as_list(vm.get("ports")):
                    if isinstance(port, dict):
                        self._forget_port(normalize_id(vm["id"]), port, close_sources, since)

    def _forget_port(self, vm_key, port, close_sources, renewed_since=None):
        for key, access in list(self._open.items()):
            if key[0] != vm_key or access["port"] != port.get("number"):
                continue
            action = port.get("action")
            deleted = set()
            if action == "not_open":
                ours = close_sources is None or access["sources"] is None or source_set(access["sources"]) <= source_set(close_sources)
            elif action == "closed":
                deleted = {
                    normalize_id(rule.get("nsg_id") or "")
                    for rule in as_list(port.get("access"))
                    if access["sources"] is None or source_set(rule.get("source_address_prefixes")) == source_set(access["sources"])
                }
                ours = bool(deleted)  # else the rules it deleted were for other sources
            else:
                ours = False
                if action == "pending":
                    access["pending"] = True
            if not ours:
                continue
            access["renew"] = False  # closed by the run: never renewed again
            if renewed_since is not None and access.get("renewed_mono", -1.0) >= renewed_since:
                access["sites"] = None  # kept: the end-of-run close waits for its rules while Azure may still apply the renewal
                continue
            remaining = access.get("sites")
            remaining = None if remaining is None or action == "not_open" else remaining - deleted
            if not remaining:
                del self._open[key]
            else:  # some NSGs of the path had no rule yet: it may still appear there
                access.update(sites=remaining, pending=True)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_started.setdefault(getattr(task, "_uuid", None), time.monotonic())
        self._start_renewals()

    def _start_renewals(self):
        """Start the lease thread once the ledger holds a lease (never in a run without one: Ansible
        forks its workers from this process, and a thread is best not running then for nothing)."""
        if self._renewals is not None or os.getpid() != self._pid:
            return
        self._ingest_records()  # what a task still running recorded
        with self._lock:
            leased = any(access.get("lease") for access in self._open.values())
        if leased:  # renews leases (jit_request lease=...) while the run is alive; dies with the controller
            self._renewals = threading.Thread(target=self._lease_loop, name="jit_guard-leases", daemon=True)
            self._renewals.start()

    def v2_runner_on_ok(self, result):
        self._observe(result)
        self._start_renewals()

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._observe(result)

    def v2_runner_item_on_ok(self, result):
        self._observe(result)

    def v2_runner_item_on_failed(self, result):
        self._observe(result)

    def v2_playbook_on_stats(self, stats):
        self._ingest_records()
        if self._open:
            self._close_all("the run ended")
        elif self._recorded:
            self._say("jit_guard: the playbook closed every JIT access it opened (%d); nothing left to close" % self._recorded, color="bright purple")

    def _say(self, message, color=None):
        message = scrub(message, self._secrets)
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

    # ------------------------------------------------------------------ leases

    def _lease_loop(self):
        while not self._stop_renewals.wait(self._lease_interval()):
            try:
                self._renew_leases()
            except Exception as exc:  # noqa: BLE001 - the thread must live on; say why a renewal failed
                self._say("jit_guard: could not check the leases: %s" % describe_error(exc, "renewing leases"), color="red")

    def _lease_interval(self):
        interval = float(self._option("lease_check_interval", 30) or 30)
        with self._lock:
            leases = [access["lease"] for access in self._open.values() if access.get("lease") and access.get("renew")]
        if leases:  # at least three checks in each renewal margin
            interval = min([interval] + [lease_renew_before(lease.seconds) / 3.0 for lease in leases])
        return max(interval, 0.05)

    def _renew_leases(self):
        """One check: read each policy holding a lease (one GET) and renew, in one initiate per
        policy, the leases that end within their renewal margin. Holds the lock throughout, so a
        close (signal, end of run) never starts in the middle of a renewal."""
        with self._lock:
            if self._closing or self._stop_renewals.is_set():
                return
            self._ingest_records()
            groups = {}
            for access in self._open.values():
                lease = access.get("lease")
                if not lease or not access.get("renew") or access.get("attempt"):
                    continue  # (recorded before its initiate and not reported yet: Azure may not hold it yet)
                subscription = parse_resource_id(access["vm_id"]).subscription
                auth_key = (subscription.lower(), tuple(sorted(access["auth"].items())))
                group = groups.setdefault(auth_key, (subscription, access["auth"], {}))
                group[2].setdefault(lease.policy_id, []).append(access)
            for auth_key, (subscription, auth, policies) in groups.items():
                api = self._lease_apis.get(auth_key)
                if api is None:
                    self._secrets = _auth.known_secrets(self._settings({}))
                    api = self._lease_apis[auth_key] = _api.connect(self._settings(auth), subscription_id=subscription)
                for policy_id, accesses in policies.items():
                    self._renew_policy(api, policy_id, accesses)

    def _renew_policy(self, api, policy_id, accesses):
        try:
            policy = api.get(policy_id, _api.SECURITY_API_VERSION)
        except Exception as exc:  # noqa: BLE001 - tried again at the next check
            self._say("jit_guard: could not read JIT policy %s to renew leases: %s" % (policy_id.rsplit("/", 1)[-1], describe_error(exc, "read")), color="red")
            return
        now = server_time(api.server_date, datetime.now(_UTC))  # Azure's clock decides
        due = []
        for access in accesses:
            lease = access["lease"]
            state, active = renewal_state(lease, policy, now)
            if state == RENEW_DUE:
                due.append(access)
            elif state == RENEW_DONE:
                access["renew"] = False
            elif state == RENEW_LOST:
                access["renew"] = False
                self._say(
                    "jit_guard: not renewing %s port %s: %s"
                    % (
                        lease.vm_id.rsplit("/", 1)[-1],
                        lease.port,
                        "its request ended (closed, expired or revoked)"
                        if active is None
                        else "another request from %s replaced it" % ",".join(active.sources),
                    ),
                    color="bright purple",
                )
        if not due:
            return
        body = renewal_body([access["lease"] for access in due], now, "Ansible jitaccess.azure.jit_guard lease renewal (%s)" % default_justification())
        try:
            answer = _api.initiate_jit_request(api, policy_id, body)
        except Exception as exc:  # noqa: BLE001 - tried again at the next check while the lease lasts
            self._say(
                "jit_guard: could not renew %d lease(s) on policy %s: %s" % (len(due), policy_id.rsplit("/", 1)[-1], describe_error(exc, "initiate")),
                color="red",
            )
            return
        started = (answer or {}).get("startTimeUtc") if isinstance(answer, dict) else None
        for access in due:
            access.update(renewed_mono=time.monotonic(), renewed_start=started or format_azure_datetime(now))
        ends = sorted({port["endTimeUtc"] for vm in body["virtualMachines"] for port in vm["ports"]})
        self._say(
            "jit_guard: renewed %d lease%s on JIT policy %s until %s" % (len(due), "" if len(due) == 1 else "s", policy_id.rsplit("/", 1)[-1], ends[0]),
            color="bright purple",
        )

    # ------------------------------------------------------------------ closing

    def _close_all(self, reason):
        self._stop_renewals.set()  # a run that is closing renews nothing any more
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
        deadline = time.monotonic() + max(int(self._option("pending_timeout", 30) or 0), 0)
        count = len(accesses)
        self._say("jit_guard: %s; closing %d JIT access%s this run opened" % (reason, count, "" if count == 1 else "es"), color="bright purple")
        self._secrets = _auth.known_secrets(self._settings({}))
        problems = _api.sdk_problems()
        if problems:
            self._say("jit_guard: cannot close: the controller's Azure SDK is not usable: %s" % "; ".join(problems), color="red")
            return
        groups = {}
        for access in accesses:
            subscription = parse_resource_id(access["vm_id"]).subscription
            auth_key = (subscription.lower(), tuple(sorted(access["auth"].items())))
            groups.setdefault(auth_key, (subscription, access["auth"], []))[2].append(access)
        for subscription, auth, members in groups.values():
            self._close_group(subscription, auth, members, deadline)

    def _option(self, name, default):
        try:
            value = self.get_option(name)
        except KeyError:
            return default
        return default if value is None else value

    def _close_group(self, subscription, auth, accesses, deadline=None):
        errors = []
        late = []

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
            api = _api.connect(self._settings(auth), subscription_id=subscription)
            topology, nsgs = read_close_state(api, call)
            planned, unknown, kept = plan_close(topology, nsgs, list(targets.values()))
            deleted = delete_rules(api, call, planned) if planned else []
            now = server_time(api.server_date, datetime.now(_UTC))
            for access in accesses:  # a lease renewal Azure may still be applying: its rules may come back
                started = access.get("renewed_start")
                access["fresh_renewal"] = bool(started) and (now - parse_azure_datetime(started)).total_seconds() < APPLY_WINDOW_SECONDS
            pending = [access for access in accesses if access.get("pending") or access["fresh_renewal"]]
            if pending and not errors:
                more_planned, more_deleted, late = self._close_pending(api, call, (topology, nsgs), pending, found=planned + kept, deadline=deadline)
                planned, deleted = planned + more_planned, deleted + more_deleted
        except _auth.AuthError as exc:
            errors.append("authentication: %s" % exc)
            deleted, planned, unknown, kept, late = [], [], [], [], []
        except Exception as exc:  # noqa: BLE001 - never let the safety net raise
            errors.append(describe_error(exc, "closing JIT access"))
            deleted, planned, unknown, kept, late = [], [], [], [], []
        for rule in deleted:
            self._say(
                "jit_guard: closed %s port %s from %s (deleted %s on NSG %s)"
                % (rule["vm_name"], ",".join(rule["ports"]), ",".join(rule["sources"]), rule["rule_name"], rule["nsg_name"]),
                color="bright purple",
            )
        failed = [rule for rule in planned if rule not in deleted]
        if not errors and not failed:
            with self._lock:  # reported above when late: not retried at exit
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
        renewals = [access for access in late if access.get("fresh_renewal")]
        late = [access for access in late if not access.get("fresh_renewal")]
        for access in renewals:
            # usually applied already (its rules were deleted above); if not, it ends with its lease
            self._say(
                "jit_guard: %s port %s: its lease was renewed at %s and no rule came back after the close;"
                " had Azure not applied the renewal yet, it ends by %s at the latest"
                % (access["vm_id"].rsplit("/", 1)[-1], access["port"], access["renewed_start"], self._lease_end(access)),
                color="bright purple",
            )
        for access in late:
            self._say(
                "jit_guard: no allow rule appeared in time for %s port %s (initiated by this run); if Azure still applies it, it stays until the request ends"
                % (access["vm_id"].rsplit("/", 1)[-1], access["port"]),
                color="red",
            )
        for error in errors:
            self._say("jit_guard: could not close everything: %s" % error, color="red")
        if errors or failed or late:
            self._unclosed = True
        if errors or failed:
            self._say(
                "jit_guard: %d rule(s) may still be open; they expire with their request. Close them with jitaccess.azure.jit_request state=absent"
                % max(len(failed), 1),
                color="red",
            )

    @staticmethod
    def _lease_end(access):
        lease = access["lease"]
        end = parse_azure_datetime(access["renewed_start"]).timestamp() + lease.seconds
        return format_azure_datetime(min(datetime.fromtimestamp(end, _UTC), lease.until))

    def _close_pending(self, api, call, state, accesses, *, found, deadline):
        """Wait (until ``deadline``) for the allow rules of initiated accesses not applied yet, and
        delete them as they appear, through the shared plan_close/delete_rules.

        ``found`` holds the rules of the first pass (planned and kept). Only the NSGs still missing
        a rule are read again, once per round with backoff (``read_nsgs``: one GET each for a few).
        Returns ``(planned, deleted, accesses still without their rules)``. ``state`` is
        ``(topology, nsgs)`` of the first pass.
        """
        topology, nsgs = state
        nsg_ids = {normalize_id(nsg_id): nsg_id for record in topology.values() for nsg_id in record.get("nsg_ids") or []}
        waiting = []
        for access in accesses:
            record = topology.get(normalize_id(access["vm_id"]))
            if record is None:
                continue
            seen = set() if access.get("fresh_renewal") else rule_sites(record, access, found)
            if missing_sites(record, access, seen):
                waiting.append((access, record, seen))
        if not waiting:
            return [], [], []
        remaining = 0 if deadline is None else deadline - time.monotonic()
        self._say(
            "jit_guard: waiting up to %d s for the allow rules of %d JIT access%s initiated but not applied yet"
            % (max(remaining, 0), len(waiting), "" if len(waiting) == 1 else "es"),
            color="bright purple",
        )
        all_planned, all_deleted = [], []

        def all_closed():
            nonlocal waiting
            missing = set()
            for access, record, seen in waiting:
                missing |= missing_sites(record, access, seen)
            nsgs.update(read_nsgs(api, call, [nsg_ids.get(nsg_key, nsg_key) for nsg_key in sorted(missing)]))
            targets = [
                {"vm_id": access["vm_id"], "ports": [access["port"]], "sources": list(access["sources"]) if access["sources"] else None}
                for access, _record, _seen in waiting
            ]
            planned, _unknown, kept = plan_close(topology, nsgs, targets)
            known = {(normalize_id(rule["nsg_id"]), rule["rule_name"].lower()) for rule in all_planned}
            planned = [rule for rule in planned if (normalize_id(rule["nsg_id"]), rule["rule_name"].lower()) not in known]
            if planned:
                all_planned.extend(planned)
                all_deleted.extend(delete_rules(api, call, planned))
            still = []
            for access, record, seen in waiting:
                now_seen = seen | rule_sites(record, access, planned + kept)
                if missing_sites(record, access, now_seen):
                    still.append((access, record, now_seen))
            waiting = still
            return not waiting

        if deadline is not None:
            # time looked up here, not bound at import: tests drive the clock
            wait_until(all_closed, remaining, sleep=time.sleep, clock=time.monotonic, delays=backoff_delays(steady_rounds=1, maximum=4.0), check_first=False)
        return all_planned, all_deleted, [access for access, _record, _seen in waiting]

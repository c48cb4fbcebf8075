"""Start armsim for a test and talk to it.

    from armsim.testing import ArmSim

    with ArmSim("seed.yaml", apply_delay=0.5) as sim:
        cred, security, network, compute = sim.sdk_clients()
        ...
        assert sim.stats()["writes"] == 1

``ArmSim`` runs ``python -m armsim serve`` in a subprocess (port 0, ready file in a temporary
directory), waits for it, and stops it (SIGTERM, then SIGKILL) on exit. A seed given as a dict
is written to a YAML file first.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

TOOLS_DIR = str(Path(__file__).resolve().parent.parent)


class ArmSimError(RuntimeError):
    pass


class ArmSim:
    def __init__(
        self,
        seed: str | os.PathLike | dict,
        apply_delay: float | None = 0,
        page_size: int | None = None,
        extra_args: tuple | list = (),
        *,
        timeout: float = 30.0,
        python: str | None = None,
        profile: str = "instant",
    ) -> None:
        self.seed = seed
        self.apply_delay = apply_delay
        self.page_size = page_size
        self.extra_args = list(extra_args)
        self.timeout = timeout
        self.python = python or sys.executable
        self.profile = profile
        self.info: dict[str, Any] = {}
        self.proc: subprocess.Popen | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "ArmSim":
        self._tmp = tempfile.TemporaryDirectory(prefix="armsim-test-")
        tmp = self._tmp.name
        seed_path = self.seed
        if isinstance(self.seed, dict):
            seed_path = os.path.join(tmp, "seed.yaml")
            with open(seed_path, "w", encoding="utf-8") as fh:
                yaml.safe_dump(self.seed, fh, sort_keys=False)
        ready = os.path.join(tmp, "ready.json")
        cmd = [self.python, "-m", "armsim", "serve", "--seed", str(seed_path), "--port", "0", "--ready-file", ready]
        cmd += ["--profile", self.profile, "--state-dir", os.path.join(tmp, "state")]
        if self.apply_delay is not None:
            cmd += ["--apply-delay", str(self.apply_delay)]
        if self.page_size is not None:
            cmd += ["--page-size", str(self.page_size)]
        cmd += [str(a) for a in self.extra_args]
        env = dict(os.environ)
        env["PYTHONPATH"] = TOOLS_DIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._stderr = open(os.path.join(tmp, "stderr.log"), "w+b")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._stderr, env=env)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if os.path.exists(ready):
                with open(ready, encoding="utf-8") as fh:
                    self.info = json.load(fh)
                return self
            if self.proc.poll() is not None:
                raise ArmSimError(f"armsim exited with {self.proc.returncode} before it was ready:\n{self._stderr_text()}")
            time.sleep(0.05)
        self.stop()
        raise ArmSimError(f"armsim was not ready within {self.timeout}s:\n{self._stderr_text()}")

    def _stderr_text(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "_stderr", None) is not None:
            self._stderr.close()
            self._stderr = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "ArmSim":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- admin API ------------------------------------------------------------------------------
    def admin(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.info["admin_url"] + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback admin URL
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise ArmSimError(f"admin {method} {path}: {exc.code} {exc.read().decode('utf-8', 'replace')}") from exc

    def stats(self) -> dict:
        return self.admin("GET", "/stats")

    def reset(self) -> None:
        self.admin("POST", "/reset")

    def reset_stats(self) -> None:
        self.admin("POST", "/stats/reset")

    def advance(self, seconds: float) -> dict:
        return self.admin("POST", "/clock/advance", {"seconds": seconds})

    def fault(self, **spec: Any) -> dict:
        return self.admin("POST", "/faults", spec)

    def clear_faults(self) -> None:
        self.admin("DELETE", "/faults")

    def state(self) -> dict:
        return self.admin("GET", "/state")

    def gates(self) -> dict:
        return self.admin("GET", "/gates")

    def requests(self) -> list:
        return self.admin("GET", "/requests")

    def config(self, **values: Any) -> dict:
        return self.admin("POST", "/config", values) if values else self.admin("GET", "/config")

    def set_power_state(self, vm_id: str, power_state: str) -> dict:
        return self.admin("POST", "/vm/power", {"id": vm_id, "power_state": power_state})

    # --- clients --------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """Environment variables for a client (the collection, ansible-playbook, the SDK)."""
        i = self.info
        return {
            "REQUESTS_CA_BUNDLE": i["ca_bundle"],
            "SSL_CERT_FILE": i["ca_bundle"],
            "AZURE_CLOUD_ENVIRONMENT": i["metadata_url"],
            "AZURE_TENANT": i["tenant_id"],
            "AZURE_CLIENT_ID": i["client_id"],
            "AZURE_SECRET": i["client_secret"],
            "AZURE_SUBSCRIPTION_ID": i["subscription_id"],
            "AZURE_DISABLE_INSTANCE_DISCOVERY": "true",
            "ANSIBLE_AZURE_AUTH_SOURCE": "env",
        }

    def credential(self, client_id: str | None = None, secret: str | None = None, tenant: str | None = None) -> Any:
        from azure.identity import ClientSecretCredential

        i = self.info
        return ClientSecretCredential(
            tenant or i["tenant_id"],
            client_id or i["client_id"],
            secret or i["client_secret"],
            authority=i["login_url"],
            disable_instance_discovery=True,
            connection_verify=i["ca_bundle"],
        )

    def certificate_credential(self, client_id: str, tenant: str | None = None) -> Any:
        """CertificateCredential for a principal seeded with ``certificate: generate``."""
        from azure.identity import CertificateCredential

        return CertificateCredential(
            tenant or self.info["tenant_id"],
            client_id,
            certificate_path=self.info["certificates"][client_id],
            authority=self.info["login_url"],
            disable_instance_discovery=True,
            connection_verify=self.info["ca_bundle"],
        )

    def client_kwargs(self) -> dict:
        arm = self.info["arm_url"]
        return {"base_url": arm, "credential_scopes": [arm + "/.default"], "connection_verify": self.info["ca_bundle"]}

    def sdk_clients(self, credential: Any = None, **kwargs: Any) -> tuple:
        """(credential, SecurityCenter, NetworkManagementClient, ComputeManagementClient) aimed at armsim."""
        from azure.mgmt.compute import ComputeManagementClient
        from azure.mgmt.network import NetworkManagementClient
        from azure.mgmt.security import SecurityCenter

        cred = credential or self.credential()
        sub = self.info["subscription_id"]
        opts = {**self.client_kwargs(), **kwargs}
        return (
            cred,
            SecurityCenter(cred, sub, **opts),
            NetworkManagementClient(cred, sub, **opts),
            ComputeManagementClient(cred, sub, **opts),
        )

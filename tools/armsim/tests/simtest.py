"""Constants, the seed and small helpers shared by armsim's tests (fixtures live in conftest.py).

Kept out of conftest.py so test modules can import them under pytest's importlib import mode.
"""

import os
import sys
import time

import requests

TOOLS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

from armsim.testing import ArmSim  # noqa: E402

SUB = "00000000-0000-0000-0000-000000000001"
TENANT = "00000000-0000-0000-0000-0000000000aa"
OTHER_TENANT = "00000000-0000-0000-0000-0000000000bb"
USERNAME = "ops@contoso.example"
PASSWORD = "pa%ss w0rd"
CLIENT_ID = "11111111-1111-1111-1111-111111111111"
SECRET = "s3cret-value"
READER_ID = "22222222-2222-2222-2222-222222222222"
OTHER_ID = "33333333-3333-3333-3333-333333333333"
JIT_API = "2020-01-01"
NET_API = "2024-05-01"

SEED = {
    "subscription_id": SUB,
    "tenant_id": TENANT,
    "principals": [
        {"client_id": CLIENT_ID, "client_secret": SECRET, "name": "ansible-ci"},
        {"client_id": READER_ID, "client_secret": "reader-secret", "name": "auditor", "role": "Reader"},
        {"username": USERNAME, "password": PASSWORD, "name": "Ops Engineer"},
    ],
    "extra_tenants": [{"tenant_id": OTHER_TENANT, "principals": [{"client_id": OTHER_ID, "client_secret": "other-secret", "name": "other-app"}]}],
    "resource_groups": [
        {
            "name": "rg-web",
            "location": "westeurope",
            "network_security_groups": [
                {
                    "name": "nsg-web",
                    "rules": [{"name": "AllowHttps", "priority": 300, "access": "Allow", "protocol": "Tcp", "source": "*", "destination_ports": ["443"]}],
                },
                {"name": "nsg-web-1"},
                {
                    "name": "nsg-open",
                    "rules": [{"name": "AllowSSH", "priority": 300, "access": "Allow", "protocol": "Tcp", "source": "*", "destination_ports": ["22"]}],
                },
                {"name": "nsg-spare"},
            ],
            "virtual_networks": [
                {
                    "name": "vnet-web",
                    "address_space": "10.1.0.0/16",
                    "subnets": [{"name": "default", "prefix": "10.1.0.0/24", "nsg": "nsg-web"}, {"name": "plain", "prefix": "10.1.1.0/24"}],
                }
            ],
            "virtual_machines": [
                {
                    "name": "web-1",
                    "tags": {"role": "web"},
                    "nics": [{"subnet": "vnet-web/default", "private_ip": "10.1.0.4", "nsg": "nsg-web-1", "public_ip": True}],
                    "gates": [{"port": 22}],
                },
                {"name": "web-2", "nics": [{"subnet": "vnet-web/default", "private_ip": "10.1.0.5", "nsg": "nsg-open"}], "gates": [{"port": 22}]},
                {"name": "win-1", "os_type": "Windows", "nics": [{"subnet": "vnet-web/default", "private_ip": "10.1.0.6"}]},
                {"name": "bare-1", "nics": [{"subnet": "vnet-web/plain", "private_ip": "10.1.1.4"}]},
                {"name": "off-1", "power_state": "deallocated", "nics": [{"subnet": "vnet-web/default"}], "gates": [{"port": 22}]},
            ],
        },
        {
            "name": "rg-db",
            "location": "northeurope",
            "network_security_groups": [{"name": "nsg-db"}],
            "virtual_networks": [
                {"name": "vnet-db", "address_space": "10.2.0.0/16", "subnets": [{"name": "default", "prefix": "10.2.0.0/24", "nsg": "nsg-db"}]}
            ],
            "virtual_machines": [{"name": "db-1", "nics": [{"subnet": "vnet-db/default", "private_ip": "10.2.0.4"}]}],
        },
        {"name": "rg-empty", "location": "westeurope"},
    ],
}


def vm_id(rg: str, name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def port(number: int, prefix: str = "*", duration: str = "PT3H", protocol: str = "*") -> dict:
    return {"number": number, "protocol": protocol, "allowedSourceAddressPrefix": prefix, "maxRequestAccessDuration": duration}


def policy_body(*vms: tuple[str, str, list]) -> dict:
    return {"kind": "Basic", "properties": {"virtualMachines": [{"id": vm_id(rg, name), "ports": ports} for rg, name, ports in vms]}}


class Arm:
    """Plain HTTPS client for raw ARM calls (status codes, headers, exact bodies)."""

    def __init__(self, sim: ArmSim) -> None:
        self.sim = sim
        self.base = sim.info["arm_url"]
        self.session = requests.Session()
        self._token: str | None = None

    def token(self, client_id: str = CLIENT_ID, secret: str = SECRET, tenant: str = TENANT, scope: str | None = None) -> requests.Response:
        return self.session.post(
            f"{self.base}/{tenant}/oauth2/v2.0/token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": scope or f"{self.base}/.default"},
            verify=self.sim.info["ca_bundle"],
        )

    def bearer(self) -> str:
        if self._token is None:
            self._token = self.token().json()["access_token"]
        return self._token

    def call(
        self, method: str, path: str, body: object = None, *, api: str | None = NET_API, token: str | None = None, headers: dict | None = None
    ) -> requests.Response:
        """``path`` is relative to the ARM URL (or absolute); ``api`` None sends no api-version."""
        hdrs = {"Authorization": f"Bearer {token or self.bearer()}"} if token != "" else {}
        hdrs.update(headers or {})
        url = path if path.startswith("https://") else self.base + path
        params = {"api-version": api} if api and "api-version=" not in url else None
        return self.session.request(method, url, json=body, params=params, headers=hdrs, verify=self.sim.info["ca_bundle"])

    def jit(self, method: str, path: str, body: object = None, api: str = JIT_API) -> requests.Response:
        return self.call(method, f"/subscriptions/{SUB}{path}", body, api=api)

    def policy(
        self, method: str, body: object = None, *, rg: str = "rg-web", loc: str = "westeurope", name: str = "default", action: str = ""
    ) -> requests.Response:
        path = f"/resourceGroups/{rg}/providers/Microsoft.Security/locations/{loc}/jitNetworkAccessPolicies/{name}{action}"
        return self.jit(method, path, body)


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()

"""Data-plane gates: admit only what NSG evaluation allows, forward to the backend."""

import socket
import threading

import pytest
from simtest import SEED, policy_body, port, vm_id

from armsim.testing import ArmSim


def connect(sim, key: str) -> bytes:
    """Connect to a gate; return what it sends first (b'' when the gate closes at once)."""
    with socket.create_connection(("127.0.0.1", sim.info["gates"][key]), timeout=5) as s:
        try:
            return s.recv(100)
        except ConnectionResetError:
            return b""


def initiate(arm, name: str, number: int = 22, source: str | None = None):
    from test_jit import end

    entry = {"number": number, "endTimeUtc": end()}
    if source:
        entry["allowedSourceAddressPrefix"] = source
    body = {"virtualMachines": [{"id": vm_id("rg-web", name), "ports": [entry]}]}
    assert arm.policy("POST", body, action="/initiate").status_code == 202


def test_ready_file_and_gates_endpoint(sim):
    assert set(sim.info["gates"]) == {"web-1:22", "web-2:22", "off-1:22"}
    gates = sim.gates()
    assert gates["web-1:22"]["listen_port"] == sim.info["gates"]["web-1:22"] and gates["web-1:22"]["backend"] == "banner"


def test_gate_follows_jit(arm, sim):
    # no JIT yet: nsg-web (subnet) has no rule for 22 -> DenyAllInBound (127.0.0.1 is an Internet source)
    assert connect(sim, "web-1:22") == b""
    arm.policy("PUT", policy_body(("rg-web", "web-1", [port(22)])))
    assert connect(sim, "web-1:22") == b""
    initiate(arm, "web-1")
    assert connect(sim, "web-1:22") == b"armsim web-1 22\n"
    sim.advance(3601)
    assert connect(sim, "web-1:22") == b""
    gate = sim.gates()["web-1:22"]
    assert (gate["admitted"], gate["denied"]) == (1, 3)
    assert gate["last"]["allowed"] is False and "MicrosoftDefenderForCloud-JITRule_" in gate["last"]["reason"]


def test_gate_requires_every_nsg(arm, sim):
    """web-2's NIC NSG allows 22 from anywhere, but the subnet NSG still denies it."""
    assert connect(sim, "web-2:22") == b""
    arm.policy("PUT", policy_body(("rg-web", "web-2", [port(22)])))
    initiate(arm, "web-2")
    assert connect(sim, "web-2:22") == b"armsim web-2 22\n"


def test_gate_source_must_match(arm, sim):
    arm.policy("PUT", policy_body(("rg-web", "web-1", [port(22)])))
    initiate(arm, "web-1", source="10.9.9.9")
    assert connect(sim, "web-1:22") == b""


def test_deallocated_vm_refuses(arm, sim):
    arm.policy("PUT", policy_body(("rg-web", "off-1", [port(22)])))
    initiate(arm, "off-1")
    assert connect(sim, "off-1:22") == b""


@pytest.fixture
def echo_backend():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"SSH-2.0-fake\r\n")
                data = conn.recv(100)
                conn.sendall(data.upper())

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()


def test_forwarding_to_backend(echo_backend):
    seed = {
        "resource_groups": [
            {
                "name": "rg",
                "location": "westeurope",
                "network_security_groups": [{"name": "open", "rules": [{"name": "AllowSSH", "priority": 100, "protocol": "Tcp", "destination_ports": ["22"]}]}],
                "virtual_networks": [{"name": "vnet", "address_space": "10.0.0.0/16"}],
                "virtual_machines": [{"name": "vm", "nics": [{"nsg": "open"}], "gates": [{"port": 22, "backend": f"127.0.0.1:{echo_backend}"}]}],
            }
        ]
    }
    with ArmSim(seed) as sim, socket.create_connection(("127.0.0.1", sim.info["gates"]["vm:22"]), timeout=5) as s:
        assert s.recv(100) == b"SSH-2.0-fake\r\n"
        s.sendall(b"hello")
        assert s.recv(100) == b"HELLO"
    assert SEED  # the shared seed is untouched

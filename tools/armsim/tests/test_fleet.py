"""The fleet generator: determinism, layout, and a 10,000-VM serve + SDK list timing check."""

import os
import subprocess
import sys
import time

import pytest
import yaml
from simtest import TOOLS

from armsim import fleet, seed
from armsim.testing import ArmSim


def test_deterministic():
    a = fleet.generate(300, resource_groups=7, locations=3, seed=5)
    b = fleet.generate(300, resource_groups=7, locations=3, seed=5)
    c = fleet.generate(300, resource_groups=7, locations=3, seed=6)
    assert a == b and fleet.to_yaml(a) == fleet.to_yaml(b)
    assert a != c


def test_cli_matches_library(tmp_path):
    env = {**os.environ, "PYTHONPATH": TOOLS}
    cmd = [sys.executable, "-m", "armsim", "fleet", "--vms", "50", "--resource-groups", "3", "--locations", "2", "--seed", "9"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    assert out == fleet.to_yaml(fleet.generate(50, resource_groups=3, locations=2, seed=9))
    assert yaml.safe_load(out) == seed.load_text(out)


def test_layout_and_fractions():
    data = fleet.generate(2000, resource_groups=10, locations=4, windows_fraction=0.25, no_nsg_fraction=0.1, subnet_nsg_fraction=0.3, open_ssh_fraction=0.2)
    vms = [vm for g in data["resource_groups"] for vm in g["virtual_machines"]]
    assert len(vms) == 2000 and len({vm["name"] for vm in vms}) == 2000
    assert {g["location"] for g in data["resource_groups"]} == {"westeurope", "eastus", "northeurope", "westus2"}
    windows = sum(vm["os_type"] == "Windows" for vm in vms) / 2000
    assert 0.2 < windows < 0.3
    state = seed.build_state(data, time.time())
    unsupported = sum(1 for vm in state.vms.values() if not state.nsg_path(vm))
    assert 0.07 < unsupported / 2000 < 0.13
    subnet_only = sum(1 for vm in vms if vm["nics"][0]["subnet"].endswith("/protected"))
    assert 0.25 < subnet_only / 2000 < 0.35
    open_rules = [
        r
        for g in data["resource_groups"]
        for n in g["network_security_groups"]
        for r in n["rules"]
        if r["name"].startswith("Allow") and r["source"] == "*" and r["destination_ports"] != ["443"]
    ]
    assert 0.12 < len(open_rules) / 1800 < 0.28
    assert len({ip for ip in (vm["nics"][0]["private_ip"] for vm in vms)}) == 2000


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
def test_10k_fleet_serves_and_lists_fast(tmp_path, capsys):
    path = tmp_path / "fleet.yaml"
    started = time.monotonic()
    path.write_text(fleet.to_yaml(fleet.generate(10000, resource_groups=100, locations=5)))
    generated = time.monotonic()
    with ArmSim(str(path), timeout=60) as sim:
        ready = time.monotonic()
        _, _, _, compute = sim.sdk_clients()
        list(compute.virtual_machines.list("rg-000"))  # token + connection
        server_cpu, client_cpu, t0 = _cpu(sim.proc.pid), time.process_time(), time.monotonic()
        count = sum(1 for _ in compute.virtual_machines.list_all())
        listed = time.monotonic() - t0
        server_cpu, client_cpu = _cpu(sim.proc.pid) - server_cpu, time.process_time() - client_cpu
        stats = sim.stats()
    with capsys.disabled():
        print(
            f"\n10k fleet: generate {generated - started:.1f}s, serve {ready - generated:.1f}s, "
            f"list 10,000 VMs through the SDK {listed:.1f}s wall (armsim CPU {server_cpu:.2f}s, SDK CPU {client_cpu:.2f}s)"
        )
    assert count == 10000
    assert stats["by_operation"]["GET virtualMachines"] == 101  # 100 pages of 100, plus the warm-up call
    assert ready - generated < 30
    assert server_cpu < 5  # armsim's own share stays small: the SDK's deserialisation dominates
    assert listed < 60  # a few seconds on an idle 2-core machine; generous for loaded CI hosts


def test_example_seed_loads():
    state = seed.build_state(os.path.join(TOOLS, "armsim", "examples", "minimal.yaml"), time.time())
    assert [vm.name for vm in state.vms.values()] == ["web-1"]


def test_bad_seed_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("resource_groups: [{name: rg, virtual_machines: [{name: vm}]}]\n")
    env = {**os.environ, "PYTHONPATH": TOOLS}
    proc = subprocess.run([sys.executable, "-m", "armsim", "serve", "--seed", str(bad)], check=False, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "no virtual network" in proc.stderr

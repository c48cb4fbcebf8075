"""Data-plane gates: one TCP listener on 127.0.0.1 per declared VM port.

A connection is admitted only if NSG evaluation (subnet NSG, then NIC NSG, with Azure's default
rules) lets the connecting address reach the VM's primary private IP on that port, and the VM is
running. Admitted connections are forwarded to the declared backend ("host:port"), or answered by
a built-in banner ("armsim <vm> <port>\\n", then an echo). Denied connections are closed at once.
"""

import contextlib
import logging
import socket
import threading
from typing import Any

from armsim import jit, nsgeval

log = logging.getLogger("armsim.gate")


class Gate:
    def __init__(self, manager: "GateManager", vm_key: str, vm_name: str, port: int, backend: str | None) -> None:
        self.manager = manager
        self.vm_key = vm_key
        self.vm_name = vm_name
        self.port = port
        self.backend = backend
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((manager.host, 0))
        self.sock.listen(64)
        self.listen_port = self.sock.getsockname()[1]
        self.admitted = 0
        self.denied = 0
        self.last: dict | None = None
        self._closed = False

    def serve(self) -> None:
        while not self._closed:
            try:
                conn, addr = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn, addr), daemon=True).start()

    def decide(self, src_ip: str, src_port: int) -> tuple[bool, str]:
        app = self.manager.app
        with app.lock:
            jit.process_expiries(app.state, app.clock.now())
            vm = app.state.vms.get(self.vm_key)
            if vm is None:
                return False, "the VM does not exist"
            if vm.power_state != "running":
                return False, f"the VM is {vm.power_state}"
            decisions = nsgeval.evaluate_path(app.state, vm, src_ip, src_port, dst_port=self.port, protocol="Tcp")
        if decisions is None:
            return False, "the VM has no network interface"
        if all(d.nsg is None for d in decisions) and nsgeval.standard_public_ip(app.state, vm):
            # a Standard-SKU public IP is closed to inbound traffic unless an NSG allows it
            return False, "no NSG on the path and a Standard public IP: inbound is closed"
        for d in decisions:
            if not d.allowed:
                return False, f"denied by rule {d.rule} of {d.nsg}"
        rules = [f"{d.rule} of {d.nsg}" for d in decisions if d.nsg]
        return True, "allowed by " + (", ".join(rules) if rules else "no NSG")

    def _handle(self, conn: socket.socket, addr: tuple) -> None:
        allowed, reason = self.decide(addr[0], addr[1])
        self.last = {"source": addr[0], "allowed": allowed, "reason": reason}
        if not allowed:
            self.denied += 1
            _close(conn)
            return
        self.admitted += 1
        if self.backend is None:
            self._banner(conn)
            return
        host, _, port = self.backend.rpartition(":")
        try:
            upstream = socket.create_connection((host or "127.0.0.1", int(port)), timeout=10)
        except OSError:
            _close(conn)
            return
        upstream.settimeout(None)
        threading.Thread(target=_pump, args=(upstream, conn), daemon=True).start()
        _pump(conn, upstream)

    def _banner(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(60)
            conn.sendall(f"armsim {self.vm_name} {self.port}\n".encode())
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        except OSError:
            pass
        finally:
            _close(conn)

    def close(self) -> None:
        self._closed = True
        _close(self.sock)

    def describe(self) -> dict:
        return {
            "vm": self.vm_name,
            "vm_id": self.manager.app.state.vms[self.vm_key].id if self.vm_key in self.manager.app.state.vms else self.vm_key,
            "port": self.port,
            "listen_port": self.listen_port,
            "backend": self.backend or "banner",
            "admitted": self.admitted,
            "denied": self.denied,
            "last": self.last,
        }


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        _close(src)
        _close(dst)


class GateManager:
    """Creates the gates declared in the seed. Gates keep their listen ports across /reset."""

    def __init__(self, app: Any, host: str) -> None:
        self.app = app
        self.host = host
        self.gates: dict[str, Gate] = {}
        for vm_key, vm in app.state.vms.items():
            for g in vm.gates:
                key = f"{vm.name}:{g.port}"
                if key in self.gates:  # the same VM name in two resource groups
                    key = f"{vm.resource_group}/{vm.name}:{g.port}"
                self.gates[key] = Gate(self, vm_key, vm.name, g.port, g.backend)

    def start(self) -> None:
        for gate in self.gates.values():
            threading.Thread(target=gate.serve, daemon=True).start()

    def stop(self) -> None:
        for gate in self.gates.values():
            gate.close()

    def reset_counters(self) -> None:
        for gate in self.gates.values():
            gate.admitted = gate.denied = 0
            gate.last = None

    def ports(self) -> dict[str, int]:
        return {key: gate.listen_port for key, gate in self.gates.items()}

    def describe(self) -> dict:
        return {key: gate.describe() for key, gate in self.gates.items()}

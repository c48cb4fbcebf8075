"""A throwaway sshd on 127.0.0.1 for tests that reach hosts over real SSH through armsim's gates.

Host and client keys in a private temporary directory, key login for the current user only, no
PAM. openssh-server is installed with apt when missing (root only), under a lock shared by the
tests that use it.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import threading

import pytest

SSHD = "/usr/sbin/sshd"
INSTALL_LOCK = os.path.join(tempfile.gettempdir(), "jitaccess-tests-openssh-install.lock")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_sshd():
    """Install openssh-server once, also when two pytest-xdist workers ask at the same time."""
    if os.path.exists(SSHD):
        return
    if os.geteuid() != 0:
        pytest.fail("openssh-server is not installed and the test is not root: apt-get install openssh-server")
    with open(INSTALL_LOCK, "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if os.path.exists(SSHD):
            return
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "openssh-server"], check=True, env=env, capture_output=True, timeout=600)


@contextlib.contextmanager
def local_sshd(port):
    """sshd on 127.0.0.1:``port``; yields ``{"key": client private key path, "tmp": its directory}``."""
    ensure_sshd()
    tmp = tempfile.mkdtemp(prefix="jit-sshd-")
    os.chmod(tmp, 0o700)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(tmp, name)], check=True)
    shutil.copy(os.path.join(tmp, "client_key.pub"), os.path.join(tmp, "authorized_keys"))
    config = os.path.join(tmp, "sshd_config")
    with open(config, "w", encoding="utf-8") as stream:
        stream.write(
            "\n".join(
                [
                    "Port %d" % port,
                    "ListenAddress 127.0.0.1",
                    "HostKey %s/host_key" % tmp,
                    "PidFile %s/sshd.pid" % tmp,
                    "AuthorizedKeysFile %s/authorized_keys" % tmp,
                    "AllowUsers %s" % getpass.getuser(),
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    settled = threading.Event()  # sshd listens, or its stderr closed (it exited)
    seen = []
    log_path = os.path.join(tmp, "sshd.log")

    def drain(stream):
        # sshd -e logs to stderr: keep the pipe drained, and note when it listens.
        with open(log_path, "w", encoding="utf-8") as log:
            for line in stream:
                log.write(line)
                log.flush()
                if not seen and "Server listening on" in line:
                    seen.append(line)
                    settled.set()
        settled.set()

    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", config], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    reader = threading.Thread(target=drain, args=(proc.stderr,), daemon=True)
    reader.start()
    try:
        settled.wait(20)
        assert seen, "sshd did not start listening; see %s" % log_path
        yield {"key": os.path.join(tmp, "client_key"), "tmp": tmp}
    finally:
        proc.terminate()
        proc.wait(10)
        reader.join(10)
        shutil.rmtree(tmp, ignore_errors=True)

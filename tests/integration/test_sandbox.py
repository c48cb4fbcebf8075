"""make sandbox: armsim with the demo fleet stays up until Ctrl-C, writes an owner-only env file,
and every command it suggests works as printed - then Ctrl-C stops armsim and removes the file."""

import os
import signal
import subprocess
import time

from harness import ROOT, collections_path

ARMSIM_SEED = "jit_request.yaml"  # unused: the sandbox starts its own armsim


def test_the_sandbox_runs_until_ctrl_c_and_its_commands_work(tmp_path):
    collections_path()  # the installed collection the env file points at
    directory = tmp_path / "sandbox"
    env = dict(os.environ, SANDBOX_DIR=str(directory))
    log = open(tmp_path / "sandbox.log", "w+", encoding="utf-8")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([os.path.join(ROOT, "demo", "sandbox.sh")], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Ctrl-C stops armsim" not in (tmp_path / "sandbox.log").read_text():
            assert proc.poll() is None, (tmp_path / "sandbox.log").read_text()
            assert time.monotonic() < deadline, "the sandbox never came up"
            time.sleep(0.2)
        env_file = directory / "env.sh"
        assert oct(env_file.stat().st_mode & 0o777) == "0o600" and oct(directory.stat().st_mode & 0o777) == "0o700"
        commands = [line.strip() for line in (tmp_path / "sandbox.log").read_text().splitlines() if line.startswith("  ansible")]
        assert len(commands) == 6, commands
        for command in commands:
            script = "source %s && %s" % (env_file, command)
            run = subprocess.run(["bash", "-c", script], check=False, capture_output=True, text=True, timeout=600, cwd=tmp_path)
            assert run.returncode == 0, (command, run.stdout[-3000:], run.stderr[-2000:])
            assert "FAILED" not in run.stdout and "Traceback" not in run.stdout + run.stderr, (command, run.stdout[-3000:])
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    output = (tmp_path / "sandbox.log").read_text()
    assert "sandbox: armsim stopped" in output and not env_file.exists()

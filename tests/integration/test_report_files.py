"""jit_fleet_report_files through real ansible-playbook: the files, their modes, check mode, a rerun,
a link at the destination, and bad input refused before anything is written."""

import json
import os

from harness import run_playbook

ARMSIM_SEED = "examples.yaml"

REPORT = {"mode": "audit", "candidates": [], "skipped": [], "policies_written": 0, "coverage": {}, "exposures": [], "bypasses": []}


def task(title, **args):
    return {"name": title, "jitaccess.azure.jit_fleet_report_files": dict({"report": "{{ report }}", "dest": "{{ dest }}"}, **args), "ignore_errors": True}


def play(*tasks):
    return [{"hosts": "localhost", "gather_facts": False, "vars": {"report": REPORT}, "tasks": list(tasks)}]


def statuses(run):
    return {r["task"]: r for r in run.results}


def test_written_rewritten_only_when_different_and_check_mode_writes_nothing(armsim, tmp_path):
    dest = tmp_path / "reports"
    dest.mkdir()
    (dest / "elsewhere").write_text("precious")
    os.symlink(dest / "elsewhere", dest / "r.md")  # replaced, never written through
    run = run_playbook(armsim, play(task("write", name="r", mode="0640"), task("again", name="r", mode="0640")), extra_vars={"dest": str(dest)})
    assert run.rc == 0, run.stdout[-3000:]
    results = statuses(run)
    assert results["write"]["status"] == "ok" and results["write"]["result"]["changed"]
    assert [(f["format"], os.path.basename(f["path"]), f["changed"]) for f in results["write"]["result"]["files"]] == [
        ("json", "r.json", True),
        ("markdown", "r.md", True),
        ("html", "r.html", True),
    ]
    assert not results["again"]["result"]["changed"]  # same report, same mode
    assert {name: oct(os.stat(dest / name).st_mode & 0o777) for name in ("r.json", "r.md", "r.html")} == dict.fromkeys(("r.json", "r.md", "r.html"), "0o640")
    assert not os.path.islink(dest / "r.md") and (dest / "elsewhere").read_text() == "precious"
    with open(dest / "r.json", encoding="utf-8") as stream:
        assert json.load(stream)["mode"] == "audit"
    assert sorted(os.listdir(dest)) == ["elsewhere", "r.html", "r.json", "r.md"]  # no temporary file left

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    run = run_playbook(armsim, play(task("preview", formats=["json"])), extra_vars={"dest": str(fresh)}, check=True)
    assert run.rc == 0 and statuses(run)["preview"]["result"]["changed"]
    assert os.listdir(fresh) == []


def test_bad_input_is_named_and_nothing_is_written(armsim, tmp_path):
    dest = tmp_path / "reports"
    dest.mkdir()
    tasks = [
        task("bad mode", mode="rw-r"),
        task("bad name", name="../outside"),
        task("bad format", formats=["pdf"]),
        task("missing dir", dest=str(tmp_path / "missing")),
        {"name": "no report", "jitaccess.azure.jit_fleet_report_files": {"report": "not a report", "dest": "{{ dest }}"}, "ignore_errors": True},
        task("unknown option", owner="root"),
    ]
    run = run_playbook(armsim, play(*tasks), extra_vars={"dest": str(dest)})
    results = statuses(run)
    messages = {name: results[name]["result"].get("msg", "") for name in results}
    assert all(results[name]["status"] == "failed" for name in messages), messages
    assert "mode must be a file mode such as '0600' or 'u=rw,g=r', got 'rw-r'" in messages["bad mode"]
    assert "name must be a plain file name (no '/'), got '../outside'" in messages["bad name"]
    assert "formats" in messages["bad format"] and "pdf" in messages["bad format"]
    assert "dest %s is not a directory" % (tmp_path / "missing") in messages["missing dir"]
    assert "report must be a dictionary" in messages["no report"] and "got str" in messages["no report"]
    assert "owner" in messages["unknown option"]
    assert os.listdir(dest) == [] and not os.path.exists(tmp_path / "outside.json")


def test_it_refuses_a_remote_connection_before_anything_else(armsim, tmp_path):
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("remote ansible_connection=ssh ansible_host=127.0.0.1 ansible_port=1\n")
    plays = [{"hosts": "remote", "gather_facts": False, "vars": {"report": REPORT}, "tasks": [task("remote")]}]
    run = run_playbook(armsim, plays, extra_vars={"dest": str(tmp_path)}, inventory=str(inventory))
    (result,) = run.results
    assert result["status"] == "failed" and "writes on the controller" in result["result"]["msg"], result
    assert sorted(os.listdir(tmp_path)) == ["inventory.ini"]

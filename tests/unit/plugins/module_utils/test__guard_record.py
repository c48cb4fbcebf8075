"""_guard_record: the lines jit_request appends for the jit_guard callback, and how the callback
reads them back (complete lines only) and flattens ``opened`` items."""

import json
import os
import stat

from fakes import APP_NSG, APP_VM, DB_VM, VM_IP, opened

from ansible_collections.jitaccess.azure.plugins.module_utils import _guard_record


def test_record_lines_carry_the_opened_items_and_no_secret():
    text = _guard_record.guard_record_lines([opened(APP_VM)], {"tenant": "t"}, now=5.0)
    (line,) = text.splitlines()
    entry = json.loads(line)
    assert entry["vm_id"] == APP_VM and entry["port"] == 22 and entry["nsg_ids"] == [APP_NSG] and entry["private_ips"] == [VM_IP]
    assert entry["auth"] == {"tenant": "t"} and entry["recorded_at"] == 5.0
    assert text.endswith("\n")


def test_write_appends_to_a_private_file_and_reads_back(tmp_path):
    path = str(tmp_path / "opened.jsonl")
    assert _guard_record.write_guard_record(path, [opened(APP_VM)], {}) is None
    assert _guard_record.write_guard_record(path, [opened(DB_VM, 3389)], {"tenant": "t"}) is None
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, "rb") as stream:
        data = stream.read()
    entries, consumed = _guard_record.parse_record(data)
    assert [(entry["vm_id"], entry["port"], entry["auth"]) for entry in entries] == [(APP_VM, 22, {}), (DB_VM, 3389, {"tenant": "t"})]
    assert consumed == len(data)


def test_write_failure_is_reported_not_raised(tmp_path):
    error = _guard_record.write_guard_record(str(tmp_path / "missing-dir" / "opened.jsonl"), [opened(APP_VM)], {})
    assert error and "No such file" in error


def test_parse_record_keeps_a_torn_line_for_later_and_skips_junk():
    good = json.dumps(opened(APP_VM)).encode()
    entries, consumed = _guard_record.parse_record(good + b"\nnot json\n[1]\n" + good[:10])
    assert [entry["vm_id"] for entry in entries] == [APP_VM]
    assert consumed == len(good) + len(b"\nnot json\n[1]\n")
    assert _guard_record.parse_record(b"") == ([], 0)


def test_accesses_from_opened_shapes():
    per_port = [opened(APP_VM, 22), opened(APP_VM, 2222, None)]
    assert _guard_record.accesses_from_opened(per_port) == [(APP_VM, 22, ("127.0.0.1",)), (APP_VM, 2222, None)]
    per_vm = [{"id": DB_VM, "ports": [22, {"number": 3389, "sources": ["10.0.0.1", "10.0.0.0/28"]}], "source": "198.51.100.1"}]
    assert _guard_record.accesses_from_opened(per_vm) == [(DB_VM, 22, ("198.51.100.1",)), (DB_VM, 3389, ("10.0.0.0/28", "10.0.0.1"))]
    assert _guard_record.accesses_from_opened([{"no": "vm"}, "junk", None]) == []


def test_first_of_and_sources_of_skip_empty_values():
    assert _guard_record.first_of({"a": None, "b": "", "c": [], "d": 0, "e": "x"}, "a", "b", "c", "d", "e") == 0
    assert _guard_record.first_of({}, "a") is None
    assert _guard_record.sources_of({"sources": [], "source": "10.0.0.2"}) == ("10.0.0.2",)
    assert _guard_record.sources_of({"allowed_source_address_prefixes": ["b", "a", "b"]}) == ("a", "b")
    assert _guard_record.sources_of({"source": None}) is None


def test_the_record_variable_and_the_mask_are_fixed_names():
    # jit_request reads the variable jit_guard exports; both take it from here
    assert _guard_record.RECORD_VARIABLE == "JITACCESS_GUARD_RECORD"
    assert _guard_record.MASKED == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def test_the_run_has_ended_when_jit_guard_removed_the_records_directory(tmp_path):
    path = tmp_path / "guard" / "opened.jsonl"
    path.parent.mkdir()
    assert not _guard_record.run_has_ended(str(path))  # the file itself need not exist yet
    path.parent.rmdir()
    assert _guard_record.run_has_ended(str(path))
    assert not _guard_record.run_has_ended(None) and not _guard_record.run_has_ended("")  # no jit_guard

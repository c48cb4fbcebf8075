"""_module: the shared virtual_machines sub-spec and the strict reading of every int option."""

import pytest

from ansible_collections.jitaccess.azure.plugins.module_utils import _module
from ansible_collections.jitaccess.azure.plugins.modules import jit_policy, jit_request


def test_vm_references_declares_its_constraints_and_extra_options():
    spec = _module.vm_references(ports={"type": "list", "elements": "int"})
    assert spec["required"] is True and spec["type"] == "list" and spec["elements"] == "dict"
    assert set(spec["options"]) == {"id", "name", "resource_group", "ports"}
    assert spec["mutually_exclusive"] == [["id", "name"], ["id", "resource_group"]]
    assert spec["required_one_of"] == [["id", "name"]] and spec["required_together"] == [["name", "resource_group"]]
    assert "required" not in _module.vm_references(required=False)
    assert "ports" not in _module.VM_REFERENCE_OPTIONS  # the shared options are not changed by a caller


@pytest.mark.parametrize("value", ["２２", "٢٢", "+22", "1_000", "22.0", "1e3", " 2 2", True])
def test_loose_numbers_are_refused_wherever_an_int_option_sits(value):
    raw = {
        "wait_timeout": value,
        "ports": [22, value],
        "virtual_machines": [{"name": "web-1", "resource_group": "rg", "ports": [value]}],
    }
    problems = _module.loose_numbers(jit_request.ARGUMENT_SPEC, raw)
    assert [problem.split(" ", 1)[0] for problem in problems] == ["virtual_machines[0].ports", "ports", "wait_timeout"]
    assert all("is not a whole number: allowed ASCII digits 0-9" in problem for problem in problems)
    nested = _module.loose_numbers(jit_policy.ARGUMENT_SPEC, {"virtual_machines": [{"id": "x", "ports": [{"number": value}]}], "ports": [{"number": value}]})
    assert [problem.split(" ", 1)[0] for problem in nested] == ["virtual_machines[0].ports[0].number", "ports[0].number"]


def test_plain_numbers_pass():
    raw = {"wait_timeout": 300, "ports": [22, "3389", " 5985 "], "virtual_machines": [{"id": "x", "ports": None}], "duration": "PT1H"}
    assert _module.loose_numbers(jit_request.ARGUMENT_SPEC, raw) == []
    assert _module.loose_numbers(jit_request.ARGUMENT_SPEC, {"ports": "not a list"}) == []  # Ansible reports the type

"""The jit_request module file itself: its argument spec and the texts and references it returns.

The logic it runs is tested with the module_utils it lives in: options, active requests and the
initiate body in test__request.py, a VM's path and its allow rules in test__nsg.py, closing in
test__close.py, waiting in test__wait.py and the jit_guard record in test__guard_record.py.
"""

from fakes import NSG_NIC, NSG_SUBNET, WEB_VM

from ansible_collections.jitaccess.azure.plugins.module_utils import _access, _module, _request, _wait
from ansible_collections.jitaccess.azure.plugins.modules import jit_request as jr


def test_argument_spec_defaults_parse_into_request_options():
    params = {name: spec.get("default") for name, spec in jr.ARGUMENT_SPEC.items()}
    params["virtual_machines"] = [{"id": WEB_VM, "name": None, "resource_group": None, "ports": [22]}]
    options = _request.parse_request_options(params, justification="unit test")
    assert (options.state, options.duration, options.duration_text) == ("present", 3600, _request.DEFAULT_REQUEST_DURATION)
    assert (options.wait, options.wait_timeout, options.force, options.stale_only) == (True, _wait.DEFAULT_WAIT_TIMEOUT, False, False)
    assert options.sources is None and options.ports is None and options.ports_for(options.targets[0]) == (22,)


def test_argument_spec_shares_the_virtual_machines_option():
    assert jr.ARGUMENT_SPEC["virtual_machines"] == _module.vm_references(ports=dict(type="list", elements="int"))
    assert jr.ARGUMENT_SPEC["virtual_machines"]["required"] is True
    assert jr.ARGUMENT_SPEC["state"]["choices"] == ["present", "absent"]


def test_format_missing():
    text = _access.format_missing([("web-1", 22, NSG_NIC, "10.1.0.4")], {NSG_NIC.lower(): "nsg-nic"})
    assert text == "VM web-1 port 22 on NSG nsg-nic (destination 10.1.0.4)"
    two = _access.format_missing([("web-1", 22, NSG_NIC.upper(), "10.1.0.4"), ("web-2", 3389, NSG_SUBNET, "10.1.0.5")], {NSG_NIC.lower(): "nsg-nic"})
    assert two == "VM web-1 port 22 on NSG nsg-nic (destination 10.1.0.4); VM web-2 port 3389 on NSG %s (destination 10.1.0.5)" % NSG_SUBNET
    assert _access.format_missing([], {}) == ""


def test_rule_references():
    planned = {"vm_name": "web-1", "nsg_id": NSG_SUBNET, "rule_name": "r1", "priority": 100, "port_numbers": [22]}
    assert _access.rule_ref(planned) == {"vm_name": "web-1", "nsg_id": NSG_SUBNET, "name": "r1"}
    access = [{"id": NSG_SUBNET + "/securityRules/r1", "nsg_id": NSG_SUBNET, "name": "r1", "priority": 100, "source_address_prefixes": ["*"]}]
    assert _access.nsg_rule_refs(access) == [{"id": NSG_SUBNET + "/securityRules/r1", "nsg_id": NSG_SUBNET, "name": "r1"}]

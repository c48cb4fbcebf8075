"""The compat environment is the one it claims to be.

``.venv-compat`` stands for "a team that automates Azure with azure.azcollection 3.12.0": the
``ansible`` package that bundles it, its exact SDK pins (constraints-azcollection-3.12.0.txt, a copy
of its requirements.txt) and jitaccess.azure on top. These tests check that claim on the installed
distributions, and that the lower bounds of our requirements.txt are exactly those pins (our lower
bounds are the oldest releases we test, and this environment is where they are tested).
"""

import json
import os
import subprocess
from importlib import metadata

import pytest
import yaml
from harness import ROOT, VENV_BIN, collections_path
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

HERE = os.path.dirname(os.path.abspath(__file__))
CONSTRAINTS = os.path.join(HERE, "constraints-azcollection-3.12.0.txt")
COMPAT_REQUIREMENTS = os.path.join(HERE, "requirements.txt")
OUR_REQUIREMENTS = os.path.join(ROOT, "requirements.txt")
AZCOLLECTION_VERSION = "3.12.0"
# The SDK layers both collections load in one process tree; the first three are ours too.
SHARED_SDKS = ["azure-core", "azure-identity", "azure-mgmt-core", "azure-mgmt-network", "azure-mgmt-compute"]
# What azure_rm_resourcegroup_info and azure.azcollection's auth use in test_azcollection_side_by_side.py.
AZCOLLECTION_ONLY = ["azure-mgmt-resource", "azure-cli-core"]


def requirements(path):
    """The requirement lines of a pip requirements file (no options, includes or comments)."""
    with open(path, encoding="utf-8") as stream:
        lines = [line.split("#", 1)[0].strip() for line in stream]
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def exact_pins(path):
    pins = {}
    for req in requirements(path):
        (spec,) = list(req.specifier) or [None]
        if spec is not None and spec.operator == "==":
            pins[canonicalize_name(req.name)] = spec.version
    return pins


PINS = exact_pins(CONSTRAINTS)


def test_the_pins_are_the_claimed_release():
    assert os.path.basename(CONSTRAINTS) == f"constraints-azcollection-{AZCOLLECTION_VERSION}.txt"
    assert set(SHARED_SDKS + AZCOLLECTION_ONLY) <= set(PINS)
    assert len(PINS) >= 50  # azure.azcollection's whole list, not a subset


@pytest.mark.parametrize("package", SHARED_SDKS + AZCOLLECTION_ONLY)
def test_sdk_version_equals_the_azcollection_pin(package):
    assert metadata.version(package) == PINS[package]


def test_every_exact_pin_is_installed():
    wrong = {name: (pin, metadata.version(name)) for name, pin in PINS.items() if metadata.version(name) != pin}
    assert wrong == {}


def test_ansible_package_bundles_azcollection_3_12_0():
    (ansible,) = [req for req in requirements(COMPAT_REQUIREMENTS) if req.name == "ansible"]
    (spec,) = list(ansible.specifier)
    assert spec.operator == "==" and metadata.version("ansible") == spec.version
    manifest = metadata.distribution("ansible").locate_file("ansible_collections/azure/azcollection/MANIFEST.json")
    with open(manifest, encoding="utf-8") as stream:
        info = json.load(stream)["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == ("azure", "azcollection", AZCOLLECTION_VERSION)


def test_ansible_resolves_the_bundled_azcollection_and_the_built_collection():
    """What ansible-playbook will load: exactly one azure.azcollection (the bundled one) and our build."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path())
    found = {}
    for fqcn in ("azure.azcollection", "jitaccess.azure"):
        proc = subprocess.run(
            [os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "list", fqcn, "--format", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        found[fqcn] = {path: versions[fqcn]["version"] for path, versions in json.loads(proc.stdout).items() if fqcn in versions}
    bundled = str(metadata.distribution("ansible").locate_file("ansible_collections"))
    assert found["azure.azcollection"] == {bundled: AZCOLLECTION_VERSION}
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as stream:
        version = yaml.safe_load(stream)["version"]
    assert found["jitaccess.azure"] == {os.path.join(collections_path(), "ansible_collections"): version}


def test_our_lower_bounds_are_the_compat_pins():
    ours = requirements(OUR_REQUIREMENTS)
    assert ours, "no requirement in %s" % OUR_REQUIREMENTS
    bounds = {}
    for req in ours:
        lower = [spec.version for spec in req.specifier if spec.operator == ">="]
        assert len(lower) == 1, "%s needs exactly one >= lower bound" % req
        bounds[canonicalize_name(req.name)] = lower[0]
        installed = metadata.version(req.name)
        assert req.specifier.contains(Version(installed)), "%s is installed at %s" % (req, installed)
    assert {name: PINS.get(name) for name in bounds} == bounds
    assert set(bounds) <= set(SHARED_SDKS)

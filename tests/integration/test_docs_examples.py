"""Every YAML example in README.md and docs/ is what a user would paste: it parses, and each
playbook or task list passes ansible-lint's production profile (the profile this collection's own
roles and playbooks are held to). Task lists are linted inside a play, as a user would put them.
Blocks that are neither (variables, AWX fields) are only parsed."""

import glob
import os
import re
import subprocess
import sys
import textwrap

import yaml
from harness import ROOT, collections_path

DOCS = ["README.md"] + sorted(os.path.join("docs", name) for name in os.listdir(os.path.join(ROOT, "docs")) if name.endswith(".md"))
FENCE = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)


def yaml_blocks():
    for doc in DOCS:
        with open(os.path.join(ROOT, doc), encoding="utf-8") as stream:
            text = stream.read()
        for index, match in enumerate(FENCE.finditer(text)):
            yield "%s-%d" % (doc.replace(os.sep, "_").removesuffix(".md"), index), textwrap.dedent(match.group(1))


def stand_in_azcollection(root):
    """A minimal azure.azcollection: the module and the action group the docs' examples name."""
    base = root / "ansible_collections" / "azure" / "azcollection"
    (base / "meta").mkdir(parents=True)
    (base / "plugins" / "modules").mkdir(parents=True)
    (base / "meta" / "runtime.yml").write_text("requires_ansible: '>=2.16'\naction_groups:\n  all:\n    - azure_rm_resourcegroup_info\n")
    module = 'DOCUMENTATION = r"""\nmodule: azure_rm_resourcegroup_info\nshort_description: stand-in\n"""\n'
    (base / "plugins" / "modules" / "azure_rm_resourcegroup_info.py").write_text(module)
    return root


def kind_of(data):
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        first = data[0]
        return "play" if "hosts" in first or any(key.endswith("import_playbook") for key in first) else "tasks"
    return "other"


def test_every_yaml_example_parses_and_passes_ansible_lint_production(tmp_path):
    linted = []
    for name, body in yaml_blocks():
        try:
            documents = list(yaml.safe_load_all(body))
        except yaml.YAMLError as exc:
            raise AssertionError("%s is not valid YAML: %s" % (name, exc)) from None
        kind = kind_of(documents[0] if documents else None)
        if kind == "other":
            continue
        playbook = body
        if kind == "tasks":
            tasks = textwrap.indent(body.replace("---\n", ""), "    ")
            playbook = "- name: Example %s\n  hosts: localhost\n  gather_facts: false\n  tasks:\n%s" % (name, tasks)
        path = tmp_path / (name + ".yml")
        path.write_text(playbook if playbook.startswith("---") else "---\n" + playbook, encoding="utf-8")
        linted.append(path.name)
    assert len(linted) >= 15, linted  # the docs' playbooks and task lists, not a handful
    # the getting-started example uses azure.azcollection beside this collection: the compat
    # environment (built by `make test` before this suite) has it; without it, a stand-in with the
    # one module and action group the example names lets the syntax check resolve them
    paths = [collections_path(), *glob.glob(os.path.join(ROOT, ".venv-compat", "lib", "python3*", "site-packages"))]
    if not any(os.path.isdir(os.path.join(path, "ansible_collections", "azure", "azcollection")) for path in paths[1:]):
        paths.append(str(stand_in_azcollection(tmp_path / "stand-in")))
    # a private HOME: ansible-lint looks in ~/.ansible/collections first, where an older copy of
    # this collection may lie; the roles the examples include must be the ones just built
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.pathsep.join(paths), NO_COLOR="1", HOME=str(home))
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-lint"), "--profile", "production", "--offline", "--nocolor", *sorted(linted)]
    run = subprocess.run(command, check=False, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    lines = (run.stdout + run.stderr).splitlines()
    findings = [
        "%s (%s)" % (line, lines[index + 1] if index + 1 < len(lines) else "?")
        for index, line in enumerate(lines)
        if re.match(r"^[a-z-]+(\[[a-z-]+\])?: ", line)
    ]
    assert run.returncode == 0 and not findings, "\n".join(findings) or run.stdout[-3000:] + run.stderr[-3000:]

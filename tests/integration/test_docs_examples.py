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
from dataclasses import dataclass

import yaml
from harness import ROOT, collections_path

DOCS = ["README.md"] + sorted(os.path.join("docs", name) for name in os.listdir(os.path.join(ROOT, "docs")) if name.endswith(".md"))
# a fence may be indented (inside a list item); its closing fence has the same indentation
FENCE = re.compile(r"^( *)```yaml\n(.*?)^\1```", re.S | re.M)
# `<!-- example: ... -->` right before a fence (blank lines allowed) says how test_docs_run treats it
MARKER = re.compile(r"<!--\s*example:((?:(?!-->).)*)-->\s*\Z", re.S)


@dataclass
class Block:
    doc: str  # path relative to the repository
    index: int  # the n-th YAML block of the document
    line: int  # line of its opening fence
    body: str
    marker: str | None  # the text of an `<!-- example: ... -->` right before the fence

    @property
    def name(self):
        return "%s-%d" % (self.doc.replace(os.sep, "_").removesuffix(".md"), self.index)


def doc_blocks(doc):
    with open(os.path.join(ROOT, doc), encoding="utf-8") as stream:
        text = stream.read()
    for index, match in enumerate(FENCE.finditer(text)):
        marker = MARKER.search(text, 0, match.start())
        body = textwrap.dedent("\n".join(line.removeprefix(match.group(1)) for line in match.group(2).split("\n")))
        yield Block(doc, index, text.count("\n", 0, match.start()) + 1, body, marker.group(1).strip() if marker else None)


def yaml_blocks():
    for doc in DOCS:
        for block in doc_blocks(doc):
            yield block.name, block.body


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

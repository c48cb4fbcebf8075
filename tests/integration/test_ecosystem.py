"""What Galaxy, ansible-builder, ansible-doc and antsibull-changelog expect of the collection, offline.

galaxy-importer-style checks on the artifact ``ansible-galaxy collection build`` makes from this tree
(built once per test module, unpacked as an installed collection): its contents, MANIFEST.json and
FILES.json, galaxy.yml, meta/runtime.yml, the documentation of every plugin and role as ansible-doc
renders it, the execution environment requirements ansible-builder derives from it, and the
changelog. No armsim, no network.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
from importlib import metadata

import ansiblelint
import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
FQCN = "jitaccess.azure"
AZURE_SDKS = ["azure-core", "azure-mgmt-core", "azure-identity"]
# Development-only paths that must never ship (galaxy.yml build_ignore)
NAME = re.compile(r"^(?!.*__)[a-z][0-9a-z_]*$")  # galaxy-importer's NAME_REGEXP (namespace, name, tags)
NOT_SHIPPED = ["tools", "tests", "bench", "extensions", "demo", ".venv", ".ansible", ".build", ".git", "Makefile", "pyproject.toml", "requirements-dev.txt"]


def load_yaml(*parts):
    with open(os.path.join(*parts), encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def run(command, cwd, env=None):
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, "%s failed (%d):\n%s\n%s" % (" ".join(command), proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def public_modules(path):
    return sorted(f[:-3] for f in os.listdir(os.path.join(path, "plugins", "modules")) if f.endswith(".py") and not f.startswith("_"))


def module_documentation(path, module):
    import ast

    with open(os.path.join(path, "plugins", "modules", module + ".py"), encoding="utf-8") as stream:
        tree = ast.parse(stream.read())
    (text,) = [node.value.value for node in tree.body if isinstance(node, ast.Assign) and node.targets[0].id == "DOCUMENTATION"]
    return yaml.safe_load(text)


def azure_modules(path):
    """The modules that talk to Azure: they take the authentication options and belong to the
    group/jitaccess.azure.azure action group (jit_fleet_report_files only writes files)."""
    return [m for m in public_modules(path) if "jitaccess.azure._attributes.ACTIONGROUPS" in module_documentation(path, m)["extends_documentation_fragment"]]


def next_release(version):
    """The release the changelog fragments go to: a plugin added since ``version`` names it."""
    release = Version(version)
    return Version("%d.%d.0" % (release.major, release.minor + 1))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(tarball path, collections root with the tarball unpacked as ansible_collections/jitaccess/azure)."""
    tmp = tmp_path_factory.mktemp("galaxy")
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(tmp / "dist"), ROOT], cwd=str(tmp))
    (tarball,) = (tmp / "dist").iterdir()
    root = tmp / "collections"
    dest = root / "ansible_collections" / "jitaccess" / "azure"
    dest.mkdir(parents=True)
    with tarfile.open(tarball) as archive:
        archive.extractall(dest, filter="data")
    return tarball, str(root)


@pytest.fixture(scope="module")
def doc_env(built):
    """An environment in which ansible-doc sees only the built collection (and ansible.builtin)."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=built[1], ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_DEPRECATION_WARNINGS="True", PAGER="cat")
    env.pop("ANSIBLE_CONFIG", None)
    return env


def installed(built, *parts):
    return os.path.join(built[1], "ansible_collections", "jitaccess", "azure", *parts)


# --------------------------------------------------------------------------------------------------


def test_tarball_contents_manifest_and_files(built):
    tarball = built[0]
    with tarfile.open(tarball) as archive:
        members = {m.name: m for m in archive.getmembers()}
        manifest = json.load(archive.extractfile("MANIFEST.json"))
        files = json.load(archive.extractfile("FILES.json"))
        digests = {name: hashlib.sha256(archive.extractfile(m).read()).hexdigest() for name, m in members.items() if m.isfile()}

    assert os.path.getsize(tarball) < 2 * 1024 * 1024, "the collection tarball grew past 2 MB"
    tops = {name.split("/")[0] for name in members}
    leaked = sorted(name for name in members if name.split("/")[0] in NOT_SHIPPED or "__pycache__" in name or name.endswith((".pyc", ".tar.gz")))
    assert not leaked, leaked
    assert {"MANIFEST.json", "FILES.json", "README.md", "plugins", "roles", "meta", "docs", "changelogs", "requirements.txt", "LICENSES"} <= tops, tops
    assert not [m.name for m in members.values() if m.issym() or m.islnk()], "links in the tarball"
    for role in {name.split("/")[1] for name in members if name.startswith("roles/") and name.count("/") > 1}:
        assert "roles/%s/README.md" % role in members, "galaxy-importer refuses a role without README.md: %s" % role
    for shipped in ("meta/runtime.yml", "meta/execution-environment.yml", "changelogs/changelog.yaml", "CHANGELOG.rst", "docs/rbac/jit-configure.json"):
        assert shipped in members, shipped

    galaxy = load_yaml(ROOT, "galaxy.yml")
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == (galaxy["namespace"], galaxy["name"], galaxy["version"])
    assert info["license"] == ["GPL-3.0-or-later"] and info["readme"] == "README.md" and info["dependencies"] == {}
    assert manifest["file_manifest_file"]["name"] == "FILES.json"
    # FILES.json lists every file with its checksum, and nothing else
    listed = {entry["name"]: entry for entry in files["files"] if entry["ftype"] == "file"}
    assert set(listed) == set(digests) - {"MANIFEST.json", "FILES.json"}
    assert all(listed[name]["chksum_sha256"] == digests[name] for name in listed)


def test_galaxy_yml_has_what_galaxy_requires():
    galaxy = load_yaml(ROOT, "galaxy.yml")
    # the limits and patterns galaxy-importer enforces
    assert NAME.match(galaxy["namespace"]) and len(galaxy["namespace"]) <= 39, galaxy["namespace"]
    assert NAME.match(galaxy["name"]) and len(galaxy["name"]) <= 64, galaxy["name"]
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", galaxy["version"]), galaxy["version"]
    assert galaxy["readme"] == "README.md" and os.path.isfile(os.path.join(ROOT, galaxy["readme"]))
    assert isinstance(galaxy["authors"], list) and galaxy["authors"] and all(isinstance(a, str) and 0 < len(a) <= 64 for a in galaxy["authors"])
    assert galaxy["license"] == ["GPL-3.0-or-later"] and "license_file" not in galaxy
    assert os.path.isfile(os.path.join(ROOT, "LICENSES", "GPL-3.0-or-later.txt"))
    tags = galaxy["tags"]
    assert 0 < len(tags) <= 20 and all(NAME.match(t) and len(t) <= 64 for t in tags), tags
    for key in ("repository", "documentation", "homepage", "issues"):
        assert re.fullmatch(r"https://\S+", galaxy[key]), key
    assert galaxy["description"].strip()


def test_runtime_yml_requires_ansible_and_action_group(built):
    runtime = load_yaml(installed(built, "meta", "runtime.yml"))
    spec = SpecifierSet(runtime["requires_ansible"])  # raises on an invalid specifier
    assert any(s.operator in (">=", ">", "~=") for s in spec), "requires_ansible needs a lower bound"
    assert Version(metadata.version("ansible-core")) in spec
    # module_defaults: group/jitaccess.azure.azure must cover every module that talks to Azure
    assert runtime["action_groups"]["azure"] == azure_modules(installed(built))
    assert set(public_modules(installed(built))) - set(azure_modules(installed(built))) == {"jit_fleet_report_files"}
    assert public_modules(installed(built)) == public_modules(ROOT)


def test_ansible_doc_renders_every_plugin_and_role_without_warnings(built, doc_env):
    """The text every user sees, for each module, the callback and both roles; then the JSON of all."""
    modules = ["%s.%s" % (FQCN, m) for m in public_modules(installed(built))]
    roles = sorted("%s.%s" % (FQCN, r) for r in os.listdir(installed(built, "roles")))
    doc = os.path.join(BIN, "ansible-doc")
    rendered = {
        "module": run([doc, *modules], cwd=built[1], env=doc_env),
        "callback": run([doc, "-t", "callback", FQCN + ".jit_guard"], cwd=built[1], env=doc_env),
        "role": run([doc, "-t", "role", *roles], cwd=built[1], env=doc_env),
    }
    for kind, proc in rendered.items():
        assert proc.stderr.strip() == "", (kind, proc.stderr)
        assert "WARNING" not in proc.stdout and "ERROR" not in proc.stdout, kind
    for module in modules:
        assert "> MODULE %s " % module in rendered["module"].stdout
    for section in ("ATTRIBUTES:", "NOTES:", "EXAMPLES:", "RETURN VALUES:", "AUTHOR:"):
        assert rendered["module"].stdout.count(section) == len(modules), section

    dump = json.loads(run([doc, "--metadata-dump", FQCN], cwd=built[1], env=doc_env).stdout)["all"]
    version = load_yaml(ROOT, "galaxy.yml")["version"]
    # version_added of every plugin and role entry point: a released version, not a future one
    callback = dump["callback"][FQCN + ".jit_guard"]["doc"]
    assert Version(callback["version_added"]) <= Version(version)
    assert sorted(dump["module"]) == modules and list(dump["callback"]) == [FQCN + ".jit_guard"] and sorted(dump["role"]) == roles
    for name, entry in dump["module"].items():
        documentation = entry["doc"]
        assert documentation["short_description"] and documentation["description"], name
        assert Version(documentation["version_added"]) <= next_release(version), (name, documentation["version_added"])
        assert entry["examples"].strip() and entry["return"], name
        assert {"check_mode", "diff_mode", "idempotent", "action_group"} <= set(documentation["attributes"]), name
        if name.split(".")[-1] in azure_modules(installed(built)):
            assert documentation["attributes"]["action_group"]["membership"] == ["%s.azure" % FQCN], name
        else:
            assert documentation["attributes"]["action_group"]["support"] == "none", name
        for option, spec in documentation["options"].items():
            assert spec.get("description") and spec.get("type"), (name, option)


def test_role_docs_render_every_entry_point_and_option(built, doc_env):
    """ansible-doc -t role shows, for both roles, every entry point and every option with type,
    default and description, exactly as meta/argument_specs.yml declares them."""
    doc = os.path.join(BIN, "ansible-doc")
    roles = sorted(os.listdir(installed(built, "roles")))
    assert roles == ["jit_access", "jit_fleet"]
    dumped = json.loads(run([doc, "-t", "role", "--json", *("%s.%s" % (FQCN, r) for r in roles)], cwd=built[1], env=doc_env).stdout)
    text = run([doc, "-t", "role", *("%s.%s" % (FQCN, r) for r in roles)], cwd=built[1], env=doc_env).stdout
    rendered = {}  # (role, entry point) -> {option: its block of text}
    for role_text in text.split("> ROLE: ")[1:]:
        role = re.match(r"\*?%s\.(\w+)" % re.escape(FQCN), role_text).group(1)
        for section in role_text.split("ENTRY POINT: ")[1:]:
            entry = re.match(r"\*?(\w+)", section).group(1)
            blocks = re.split(r"\n\s*\n", section)
            rendered[role, entry] = {m.group(1): block for block in blocks for m in [re.match(r"^(?:- |\s+)(\w+)\s", block)] if m}
    for role in roles:
        specs = load_yaml(installed(built, "roles", role, "meta", "argument_specs.yml"))["argument_specs"]
        entry_points = dumped["%s.%s" % (FQCN, role)]["entry_points"]
        assert sorted(entry_points) == sorted(specs) and "main" in specs
        for name, entry in entry_points.items():
            assert re.search(r"ENTRY POINT: \*?%s\*? - %s" % (name, re.escape(entry["short_description"][:40])), text), (role, name)
            assert entry["version_added"], (role, name)
            assert entry["description"] and entry["options"], (role, name)
            assert sorted(entry["options"]) == sorted(specs[name]["options"]), (role, name)
            for option, spec in entry["options"].items():
                assert spec.get("description") and spec.get("type"), (role, name, option)
                assert "default" in spec or spec.get("required"), "%s %s: %s has no default" % (role, name, option)
                if spec["type"] == "list":
                    assert spec.get("elements"), (role, name, option)
                block = rendered[role, name].get(option, "")
                assert "type: %s" % spec["type"] in block and "default:" in block, (role, name, option, block)


TEMPLATE_LOOKUP = re.compile(r"""(?:lookup\(\s*['"](?:ansible\.builtin\.)?template['"]\s*,\s*['"]([^'"]+)['"])""")


def _task_files(role_dir, entry, seen=None):
    """The task files an entry point runs (following include_tasks/import_tasks within the role)."""
    seen = seen if seen is not None else []
    path = os.path.join(role_dir, "tasks", entry + ".yml")
    if path in seen:
        return seen
    seen.append(path)
    with open(path, encoding="utf-8") as stream:
        text = stream.read()
    for included in re.findall(r"ansible\.builtin\.(?:include|import)_tasks:\s*(\S+)\.yml", text):
        _task_files(role_dir, included, seen)
    return seen


def _walk(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


@pytest.mark.parametrize("role", ["jit_access", "jit_fleet"])
def test_role_variables_are_all_declared(role):
    """Every input variable an entry point's tasks, templates and defaults use is declared in its
    argument spec, every declared option is used, and each declared default is defaults/main.yml's."""
    role_dir = os.path.join(ROOT, "roles", role)
    specs = load_yaml(role_dir, "meta", "argument_specs.yml")["argument_specs"]
    defaults = load_yaml(role_dir, "defaults", "main.yml")
    public = re.compile(r"(?<![.\w])(%s_[a-z0-9][a-z0-9_]*)\b" % role)  # not jitaccess.azure.<filter name>
    for entry, spec in specs.items():
        declared = spec["options"]
        texts, outputs = [], set()
        for path in _task_files(role_dir, entry):
            with open(path, encoding="utf-8") as stream:
                texts.append(stream.read())
            for key, value in _walk(yaml.safe_load(texts[-1]) or []):
                if key == "register":
                    outputs.add(value)
                elif key == "ansible.builtin.set_fact":
                    outputs.update(value)
            for template in TEMPLATE_LOOKUP.findall(texts[-1]):
                with open(os.path.join(role_dir, "templates", template), encoding="utf-8") as stream:
                    texts.append(stream.read())
        used = {name for text in texts for name in public.findall(text)} - outputs
        assert used == set(declared), "%s %s: used but not declared %s; declared but not used %s" % (
            role,
            entry,
            sorted(used - set(declared)),
            sorted(set(declared) - used),
        )
        for option, option_spec in declared.items():
            assert option in defaults, "%s: %s has no value in defaults/main.yml" % (role, option)
            assert option_spec.get("default") == defaults[option], "%s %s: argument_specs default %r != defaults/main.yml %r" % (
                role,
                option,
                option_spec.get("default"),
                defaults[option],
            )
    # and nothing in defaults/main.yml is undocumented
    assert set(defaults) <= set(specs["main"]["options"]), sorted(set(defaults) - set(specs["main"]["options"]))


def test_execution_environment_requirements_are_ranges(built, tmp_path):
    ee = load_yaml(installed(built, "meta", "execution-environment.yml"))
    assert ee["version"] == 3 and ee["dependencies"] == {"python": "requirements.txt"}
    assert os.path.isfile(installed(built, ee["dependencies"]["python"]))
    # valid against the execution environment schema ansible-lint (and so galaxy-importer) applies
    with open(os.path.join(os.path.dirname(ansiblelint.__file__), "schemas", "execution-environment.json"), encoding="utf-8") as stream:
        jsonschema.validate(ee, json.load(stream))

    pip_file = tmp_path / "requirements.txt"
    proc = run([os.path.join(BIN, "ansible-builder"), "introspect", "--sanitize", "--write-pip", str(pip_file), built[1]], cwd=str(tmp_path))
    introspected = yaml.safe_load(proc.stdout)
    assert introspected["system"] == []
    lines = introspected["python"]
    assert all(line.endswith("# from collection %s" % FQCN) for line in lines), lines
    requirements = {Requirement(line.split("#")[0]).name: Requirement(line.split("#")[0]) for line in lines}
    assert sorted(requirements) == sorted(Requirement(r.split("#")[0]).name for r in pip_file.read_text().splitlines() if r.strip())
    for sdk in AZURE_SDKS:
        assert sdk in requirements, (sdk, lines)
    for name, requirement in requirements.items():
        operators = {spec.operator for spec in requirement.specifier}
        assert operators & {">=", ">", "~="} and operators & {"<", "<=", "~="}, "%s needs a range with both bounds: %s" % (name, requirement)
        assert not operators & {"==", "==="}, "%s is pinned: %s" % (name, requirement)
        # the range holds the version the tests run with
        assert requirement.specifier.contains(metadata.version(name)), (name, metadata.version(name), str(requirement.specifier))


def test_changelog_is_generated_and_lints(tmp_path):
    config = load_yaml(ROOT, "changelogs", "config.yaml")
    assert config["keep_fragments"] is True
    changes = load_yaml(ROOT, "changelogs", "changelog.yaml")
    version = load_yaml(ROOT, "galaxy.yml")["version"]
    assert version in changes["releases"] and changes["releases"][version]["release_date"]
    release = changes["releases"][version]
    # the modules of that release; those added since name the next one (antsibull-changelog lists them then)
    released = [m for m in public_modules(ROOT) if Version(module_documentation(ROOT, m)["version_added"]) <= Version(version)]
    assert all(Version(module_documentation(ROOT, m)["version_added"]) == next_release(version) for m in public_modules(ROOT) if m not in released)
    assert set(release["modules"] and [m["name"] for m in release["modules"]]) == set(released)
    with open(os.path.join(ROOT, "CHANGELOG.rst"), encoding="utf-8") as stream:
        rst = stream.read()
    assert "v%s" % version in rst and all("%s.%s" % (FQCN, m) in rst for m in released)
    proc = run([os.path.join(BIN, "antsibull-changelog"), "lint"], cwd=ROOT)
    assert proc.stdout.strip() == "" and proc.stderr.strip() == ""

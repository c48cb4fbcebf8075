"""The install paths of README.md, docs/getting-started.md and docs/awx.md, offline.

- the built tarball: ``ansible-galaxy collection build``, then ``collection install --offline``;
- git: the ``requirements.yml`` of docs/getting-started.md (its placeholder URL replaced by this
  repository as a ``file://`` URL, its branch by ``HEAD``) and the one-line ``git+file://`` form;
- an execution environment: the ``execution-environment.yml`` and ``requirements.yml`` of
  docs/awx.md through ``ansible-builder create`` (the build context, no image), then the
  collection install step of the image run offline on that context, for jitaccess.azure's entry
  (azure.azcollection's needs Galaxy).

Each install must give MANIFEST.json naming jitaccess.azure with galaxy.yml's version (for git:
the version committed at HEAD, which is what a clone gets).
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from test_docs_examples import doc_blocks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
PLACEHOLDER_URL = "https://git.example.com/platform/jitaccess.azure.git"


def run(command, cwd, env=None):
    proc = subprocess.run(command, cwd=str(cwd), env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, "%s failed (%d):\n%s\n%s" % (" ".join(map(str, command)), proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def galaxy(*args, cwd):
    # No ansible.cfg, no Galaxy server from the environment, and only the target as collections
    # path: a copy installed elsewhere on the machine (~/.ansible/collections) must not make the
    # install a no-op (as on a user's clean machine).
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env["ANSIBLE_GALAXY_DISABLE_GPG_VERIFY"] = "1"
    for flag in ("-p", "--collections-path"):
        if flag in args:
            env["ANSIBLE_COLLECTIONS_PATH"] = str(args[args.index(flag) + 1])
    return run([os.path.join(BIN, "ansible-galaxy"), *args], cwd, env)


def manifest_info(collections_root):
    path = os.path.join(str(collections_root), "ansible_collections", "jitaccess", "azure", "MANIFEST.json")
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)["collection_info"]


def working_tree_version():
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as stream:
        return yaml.safe_load(stream)["version"]


def head_version():
    shown = run(["git", "show", "HEAD:galaxy.yml"], ROOT).stdout
    return yaml.safe_load(shown)["version"]


def yaml_blocks(doc):
    """The YAML blocks of docs/``doc`` (also indented ones inside list items), as test_docs_examples reads them."""
    return [block.body for block in doc_blocks(os.path.join("docs", doc))]


def only(blocks, needle):
    matches = [block for block in blocks if needle in block]
    assert len(matches) == 1, "expected one YAML block with %r, found %d" % (needle, len(matches))
    return yaml.safe_load(matches[0])


needs_git = pytest.mark.skipif(not os.path.isdir(os.path.join(ROOT, ".git")) or shutil.which("git") is None, reason="not a git checkout")


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    galaxy("collection", "build", "--force", "--output-path", str(dist), ROOT, cwd=dist)
    (built,) = dist.iterdir()
    assert built.name == "jitaccess-azure-%s.tar.gz" % working_tree_version()
    return built


def test_tarball_installs_offline(tarball, tmp_path):
    galaxy("collection", "install", "--offline", "-p", str(tmp_path / "collections"), str(tarball), cwd=tmp_path)
    info = manifest_info(tmp_path / "collections")
    assert (info["namespace"], info["name"], info["version"]) == ("jitaccess", "azure", working_tree_version())
    # the file the documented `pip install -r .../requirements.txt` reads
    requirements = tmp_path / "collections" / "ansible_collections" / "jitaccess" / "azure" / "requirements.txt"
    names = sorted(re.match(r"[A-Za-z0-9_.-]+", line).group(0) for line in requirements.read_text().splitlines() if line.strip() and not line.startswith("#"))
    assert names == ["azure-core", "azure-identity", "azure-mgmt-core"]


@needs_git
def test_git_requirements_file_from_the_docs_installs(tmp_path):
    requirements = only(yaml_blocks("getting-started.md"), "type: git")
    (entry,) = requirements["collections"]
    assert entry["source"] == PLACEHOLDER_URL and entry["type"] == "git"
    entry.update(source="file://" + ROOT, version="HEAD")
    (tmp_path / "requirements.yml").write_text(yaml.safe_dump(requirements))
    galaxy("collection", "install", "--offline", "-r", "requirements.yml", "-p", str(tmp_path / "collections"), cwd=tmp_path)
    info = manifest_info(tmp_path / "collections")
    assert (info["namespace"], info["name"], info["version"]) == ("jitaccess", "azure", head_version())


@needs_git
def test_git_url_installs(tmp_path):
    galaxy("collection", "install", "--offline", "-p", str(tmp_path / "collections"), "git+file://%s,HEAD" % ROOT, cwd=tmp_path)
    info = manifest_info(tmp_path / "collections")
    assert (info["namespace"], info["name"], info["version"]) == ("jitaccess", "azure", head_version())
    installed = tmp_path / "collections" / "ansible_collections" / "jitaccess" / "azure"
    assert (installed / "FILES.json").is_file() and not (installed / "tests").exists()  # built, build_ignore applied


def test_execution_environment_of_the_docs_builds_its_context(tarball, tmp_path):
    blocks = yaml_blocks("awx.md")
    definition = only(blocks, "version: 3")
    requirements = only(blocks, "type: file")
    assert {c["name"] for c in requirements["collections"]} >= {"azure.azcollection"}
    (copied,) = [entry["src"] for entry in definition["additional_build_files"]]
    (local,) = [c for c in requirements["collections"] if c.get("type") == "file"]
    # the documented file names, for the tarball this version builds
    assert re.fullmatch(r"jitaccess-azure-[0-9.]+\.tar\.gz", copied) and local["name"].endswith("/" + copied)
    definition["additional_build_files"][0]["src"] = tarball.name
    local["name"] = local["name"].replace(copied, tarball.name)
    shutil.copy(tarball, tmp_path / tarball.name)
    (tmp_path / "execution-environment.yml").write_text(yaml.safe_dump(definition, sort_keys=False))
    (tmp_path / "requirements.yml").write_text(yaml.safe_dump(requirements, sort_keys=False))

    run([os.path.join(BIN, "ansible-builder"), "create", "-f", "execution-environment.yml", "--context", "context"], tmp_path)
    build = tmp_path / "context" / "_build"
    containerfile = next(p for p in (tmp_path / "context").iterdir() if p.name in ("Containerfile", "Dockerfile")).read_text()
    assert "ansible-galaxy collection install" in containerfile and "WORKDIR /build" in containerfile
    assert (build / local["name"]).is_file()  # where the image's galaxy step (cwd /build) finds it

    # The image's collection install step, offline, for the entries that need no Galaxy.
    offline = {"collections": [c for c in yaml.safe_load((build / "requirements.yml").read_text())["collections"] if c.get("type") == "file"]}
    (build / "requirements-offline.yml").write_text(yaml.safe_dump(offline))
    galaxy("collection", "install", "--offline", "-r", "requirements-offline.yml", "--collections-path", str(tmp_path / "ee"), cwd=build)
    info = manifest_info(tmp_path / "ee")
    assert (info["namespace"], info["name"], info["version"]) == ("jitaccess", "azure", working_tree_version())

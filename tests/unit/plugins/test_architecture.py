"""The shape docs/architecture.md promises: imports point down the layers, no plugin file reaches
into another's private names, and no plugin file grows past ~600 lines of code."""

import ast
import io
import os
import tokenize

import pytest

PLUGINS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))), "plugins")
PACKAGE = "ansible_collections.jitaccess.azure.plugins.module_utils"

# Lower numbers sit lower; a module_utils file may import only files on a lower layer.
LAYERS = {
    "_arm": 0,  # resource ids, the validation error, REST fields, timestamps, error text
    "_auth": 0,  # settings and credentials
    "_wait": 0,  # the one waiter
    "_parallel": 0,  # independent writes side by side
    "_report_html": 0,  # the jit_fleet report as an HTML page (used by the filter plugin)
    "_jit": 1,  # policy logic
    "_nsg": 1,  # NSG rules: model, evaluation, a VM's path, JIT rule matching
    "_access": 2,  # the JIT allow rules on a VM's path (what a request opened)
    "_guard_record": 1,  # the jit_request -> jit_guard record
    "_request": 2,  # request logic and jit_request's typed options
    "_api": 2,  # the only place that talks to ARM
    "_bastion": 2,  # Azure Bastion: reachability, subnet prefixes, bastion-only verdict
    "_topology": 3,  # bulk reads turned into VM records
    "_lease": 3,  # leases jit_guard renews (jit_request lease=)
    "_close": 4,  # the close planner shared by jit_request and jit_guard
    "_facts": 4,  # nsg_jit_facts' verdicts
    "_module": 5,  # AnsibleModule + auth options + clean failures
}
TOP = 9  # modules, the callback and the filter plugin
MAX_CODE_LINES = 600
DOCUMENTATION_NAMES = {"DOCUMENTATION", "EXAMPLES", "RETURN"}


def plugin_files():
    for directory, _dirs, files in os.walk(PLUGINS):
        for name in sorted(files):
            if name.endswith(".py") and name != "__init__.py":
                yield os.path.join(directory, name)


def layer_of(path):
    name = os.path.splitext(os.path.basename(path))[0]
    return LAYERS[name] if os.path.basename(os.path.dirname(path)) == "module_utils" else TOP


def imported_utils(tree):
    """``{(module_utils name, imported name or None)}`` of every import, module level or local."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == PACKAGE:
                found.update((alias.name, None) for alias in node.names)
            elif node.module.startswith(PACKAGE + "."):
                found.update((node.module.rsplit(".", 1)[1], alias.name) for alias in node.names)
    return found


def code_lines(source):
    """Lines holding code: not blank, not comments, not docstrings, not the documentation blocks."""
    tree = ast.parse(source)
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(target, ast.Name) and target.id in DOCUMENTATION_NAMES for target in node.targets):
            skipped.update(range(node.lineno, node.end_lineno + 1))
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                skipped.update(range(first.lineno, first.end_lineno + 1))
    lines = set()
    ignored = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in ignored:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - skipped)


FILES = sorted(plugin_files())


def test_every_module_utils_file_has_a_layer():
    names = {os.path.splitext(os.path.basename(path))[0] for path in FILES if os.path.basename(os.path.dirname(path)) == "module_utils"}
    assert names == set(LAYERS)


@pytest.mark.parametrize("path", FILES, ids=lambda path: os.path.relpath(path, PLUGINS))
def test_imports_point_down_the_layers(path):
    with open(path, encoding="utf-8") as stream:
        tree = ast.parse(stream.read())
    own = layer_of(path)
    upward = sorted(module for module, _name in imported_utils(tree) if LAYERS[module] >= own)
    assert not upward, f"{os.path.basename(path)} (layer {own}) imports {upward} from its own layer or above"


@pytest.mark.parametrize("path", FILES, ids=lambda path: os.path.relpath(path, PLUGINS))
def test_no_private_name_is_imported_from_another_file(path):
    with open(path, encoding="utf-8") as stream:
        tree = ast.parse(stream.read())
    private = sorted(f"{module}.{name}" for module, name in imported_utils(tree) if name and name.startswith("_"))
    assert not private
    reached = sorted(
        f"{node.value.id}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in LAYERS and node.attr.startswith("_")
    )
    assert not reached, f"{os.path.basename(path)} reaches into private names {reached}"


@pytest.mark.parametrize("path", FILES, ids=lambda path: os.path.relpath(path, PLUGINS))
def test_no_plugin_file_exceeds_the_size_limit(path):
    with open(path, encoding="utf-8") as stream:
        count = code_lines(stream.read())
    assert count <= MAX_CODE_LINES, f"{os.path.basename(path)} has {count} lines of code (limit {MAX_CODE_LINES}, documentation excluded): split it"


def test_the_line_counter_skips_documentation_and_comments():
    source = 'DOCUMENTATION = r"""\nline\nline\n"""\n\n\ndef f():\n    """Doc."""\n    # comment\n    return 1\n'
    assert code_lines(source) == 2


@pytest.mark.parametrize("path", FILES, ids=lambda path: os.path.relpath(path, PLUGINS))
def test_documentation_blocks_are_yaml(path):
    """A ': ' in a plain description line breaks ansible-doc; fail here, in seconds, not in sanity."""
    import yaml

    with open(path, encoding="utf-8") as stream:
        tree = ast.parse(stream.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(target, ast.Name) and target.id in DOCUMENTATION_NAMES for target in node.targets):
            yaml.safe_load(node.value.value)

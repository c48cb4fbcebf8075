#!/usr/bin/env bash
# Run `ansible-test sanity` offline on a copy of the collection laid out as ansible-test expects
# (ansible_collections/jitaccess/azure). Zero ignore entries: tests/sanity holds none.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.venv"
# A private copy per run, so parallel runs never clobber each other.
mkdir -p "$root/.build"
work=$(mktemp -d "$root/.build/sanity.XXXXXX")
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/jitaccess/azure"

# Seed ansible-test's pip bootstrap cache with our ensurepip-based script (see get_pip.py).
pip_version=$("$venv/bin/python" - <<'PY'
import re, ansible_test._internal.python_requirements as r
print(re.search(r"pip='([0-9.]+)'", open(r.__file__).read()).group(1))
PY
)
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
mkdir -p "$(dirname "$cache")"
cp "$root/tools/dev/get_pip.py" "$cache"

# Copy what git knows (tracked + untracked, not ignored); dev-only tooling is linted by ruff instead.
mkdir -p "$dest"
cd "$root"
git ls-files -co --exclude-standard -z \
  | grep -zv -E '^(tools|bench)/' \
  | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$dest"
cd "$dest"
git init -q . && git add -A >/dev/null 2>&1
PATH="$venv/bin:$PATH" ansible-test sanity --venv --python 3.11 --color no "$@"

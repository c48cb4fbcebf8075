#!/usr/bin/env bash
# Run `ansible-test sanity` offline on a copy of the collection laid out as ansible-test expects
# (ansible_collections/jitaccess/azure): the full suite on the controller's Python, and the
# Python-version-specific tests (compile, import) on every other supported Python found on PATH or
# in pyenv (see below).
# Zero ignore entries: tests/sanity holds none.
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

# Which Python versions: those tests/config.yml allows and this ansible-test supports. "Allows" is
# ansible-test's own reading of the file: the versions of `modules: python_requires`, plus every
# controller version (ansible-test always runs the version-specific sanity tests there, since
# ansible-doc and AnsiballZ parse modules on the controller).
# Which tests: the full suite once, on the controller's Python (the venv's); on every other version
# only the tests ansible-test runs per Python version (its SanityMultipleVersion tests: compile and
# import): they alone check the code against each target Python. ansible-test runs every other test
# once, on the controller's Python of that run, with the same rules whatever the version.
facts=$("$venv/bin/python" - "$dest/tests/config.yml" <<'PY'
import os
import sys

import yaml
from ansible_test._internal.commands.sanity import SanityMultipleVersion, sanity_get_tests
from ansible_test._internal.content_config import parse_content_config

config = {"modules": {"python_requires": "default"}}  # ansible-test's default without the file
if os.path.exists(sys.argv[1]):
    with open(sys.argv[1], encoding="utf-8") as stream:
        config = yaml.safe_load(stream)
multi = [test.name for test in sanity_get_tests() if isinstance(test, SanityMultipleVersion)]
print(",".join(parse_content_config(config).python_versions), "%d.%d" % sys.version_info[:2], ",".join(multi))
PY
)
read -r versions controller multi <<<"$facts"
IFS=, read -r -a wanted <<<"$versions"
IFS=, read -r -a multi_tests <<<"$multi"
[ "${#wanted[@]}" -gt 0 ] || { echo "sanity: tests/config.yml allows no Python version that ansible-test supports" >&2; exit 1; }

# Where interpreters are looked for: PATH (the venv first), then, when pyenv is installed, its
# installed versions (<root>/versions/X.Y.Z/bin/pythonX.Y), selected or not. An interpreter counts
# when it runs and reports the version it is named for: a pyenv shim for a version pyenv has not
# selected is on PATH but fails, so `command -v` alone is not enough.
pyenv_root=
if command -v pyenv >/dev/null 2>&1; then pyenv_root=$(pyenv root 2>/dev/null) || pyenv_root=; fi
[ -n "$pyenv_root" ] || pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
[ -d "$pyenv_root/versions" ] || pyenv_root=
python_dirs() {
  local version=$1 search
  IFS=: read -r -a search <<<"$venv/bin:$PATH"
  printf '%s\n' "${search[@]}"
  [ -n "$pyenv_root" ] || return 0
  # Final releases (X.Y.Z) newest first, then anything else (X.Y.Zrc1, X.Y.Zt, ...).
  find "$pyenv_root/versions" -mindepth 1 -maxdepth 1 -name "$version.*" -printf '%f\n' 2>/dev/null \
    | awk -v v="$version" '{ print ($0 ~ "^" v "\\.[0-9]+$" ? 0 : 1) "\t" $0 }' \
    | sort -t "$(printf '\t')" -k1,1n -k2,2rV | cut -f2 \
    | sed "s|^|$pyenv_root/versions/|; s|\$|/bin|"
}
find_python() {
  local version=$1 dir
  while IFS= read -r dir; do
    [ -n "$dir" ] && [ -x "$dir/python$version" ] || continue
    if [ "$("$dir/python$version" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$version" ]; then
      echo "$dir"
      return 0
    fi
  done < <(python_dirs "$version")
  return 1
}
present=() dirs=() missing=()
for version in "${wanted[@]}"; do
  if dir=$(find_python "$version"); then present+=("$version") dirs+=("$dir"); else missing+=("$version"); fi
done
echo "sanity: supported (tests/config.yml and ansible-test): ${wanted[*]}"
echo "sanity: pyenv: ${pyenv_root:-not installed}"
echo "sanity: supported but not found, NOT tested: ${missing[*]:-none}"
if [ "${#present[@]}" -eq 0 ]; then
  echo "sanity: none of the supported Python versions is installed (no working python${wanted[0]}..python${wanted[-1]} on PATH or in pyenv)" >&2
  exit 1
fi

# The full suite runs on the controller's Python when it is a supported one (it always is: every
# controller version is), else on the first version found.
full=${present[0]}
for version in "${present[@]}"; do [ "$version" = "$controller" ] && full=$version; done
# Caller arguments go to every run. A caller's own --test choice narrows the other versions to the
# version-specific tests among them (none: those versions are skipped).
args=() chosen=()
while [ $# -gt 0 ]; do
  case $1 in
    --test) [ $# -ge 2 ] || { echo "sanity: --test needs a value" >&2; exit 2; }; chosen+=("$2"); shift 2 ;;
    --test=*) chosen+=("${1#--test=}"); shift ;;
    *) args+=("$1"); shift ;;
  esac
done
full_tests=() extra_tests=()
for test in "${chosen[@]}"; do full_tests+=(--test "$test"); done
for test in "${multi_tests[@]}"; do
  if [ "${#chosen[@]}" -eq 0 ] || [[ " ${chosen[*]} " == *" $test "* ]]; then extra_tests+=(--test "$test"); fi
done
others=() full_what="full suite" extra_what=
for version in "${present[@]}"; do [ "$version" = "$full" ] || others+=("$version"); done
[ "${#chosen[@]}" -eq 0 ] || full_what="${chosen[*]}"
for ((i = 1; i < ${#extra_tests[@]}; i += 2)); do extra_what+="${extra_what:+ }${extra_tests[$i]}"; done
echo "sanity: Python $full (the controller's): $full_what"
echo "sanity: Python ${others[*]:-(no other version found)}: ${extra_what:-nothing (no version-specific test requested)}"

results=() ran=() failed=()
run() {  # run VERSION DIR WHAT ANSIBLE-TEST-ARGS...
  local version=$1 dir=$2 what=$3 start rc=0
  shift 3
  echo "sanity: === Python $version ($dir/python$version): $what ==="
  start=$SECONDS
  # ansible-test (from the venv) looks pythonX.Y up on PATH: put the working one first.
  PATH="$venv/bin:$dir:$PATH" ansible-test sanity --venv --python "$version" --color no "$@" || rc=$?
  results+=("Python $version: $what: $([ "$rc" -eq 0 ] && echo passed || echo "FAILED (exit $rc)") in $((SECONDS - start))s")
  ran+=("$version")
  [ "$rc" -eq 0 ] || failed+=("$version")
}
for i in "${!present[@]}"; do
  [ "${present[$i]}" = "$full" ] || continue
  run "$full" "${dirs[$i]}" "$full_what" ${full_tests[@]+"${full_tests[@]}"} ${args[@]+"${args[@]}"}
done
for i in "${!present[@]}"; do
  version=${present[$i]}
  [ "$version" != "$full" ] || continue
  if [ "${#extra_tests[@]}" -eq 0 ]; then
    results+=("Python $version: skipped (no version-specific test among --test ${chosen[*]})")
    continue
  fi
  run "$version" "${dirs[$i]}" "$extra_what" "${extra_tests[@]}" ${args[@]+"${args[@]}"}
done

echo "sanity: --- summary ---"
printf 'sanity: %s\n' "${results[@]}"
echo "sanity: supported but not found, NOT tested: ${missing[*]:-none}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "sanity: FAILED on Python ${failed[*]} (of ${ran[*]})" >&2
  exit 1
fi
echo "sanity: passed on Python ${ran[*]}"

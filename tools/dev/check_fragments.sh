#!/usr/bin/env bash
# Every change to what users run (plugins/, roles/, playbooks/, meta/) needs a changelog fragment.
# Compares the working tree with the merge base of origin/main (or the first commit when there
# is no remote), so it checks a branch's whole change, not only the last commit.
set -euo pipefail
cd "$(dirname "$0")/../.."
base=$(git merge-base HEAD origin/main 2>/dev/null || git rev-list --max-parents=0 HEAD | tail -n 1)
changed=$(git diff --name-only "$base" -- plugins roles playbooks meta; git ls-files -o --exclude-standard plugins roles playbooks meta)
fragments=$(git diff --name-only --diff-filter=AM "$base" -- changelogs/fragments; git ls-files -o --exclude-standard changelogs/fragments)
if [ -n "$changed" ] && [ -z "$fragments" ]; then
  echo "Changes under plugins/, roles/, playbooks/ or meta/ need a fragment in changelogs/fragments/:"
  echo "$changed" | sed 's/^/  /'
  exit 1
fi
echo "changelog fragments: ok"

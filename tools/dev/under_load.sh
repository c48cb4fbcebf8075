#!/usr/bin/env bash
# Run the test suites N times in a row (default 3) while a CPU-bound process runs beside them, as
# a loaded 2-core CI machine would: any test that depends on timing fails here first.
#   tools/dev/under_load.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
python3 -c 'while True: pass' &
hog=$!
trap 'kill $hog 2>/dev/null || true' EXIT
log=$(mktemp -t under_load.XXXXXX)
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  if ANSIBLE_COLLECTIONS_PATH=$PWD/.build/collections PYTHONPATH=$PWD/tools \
    .venv/bin/pytest -q -n 2 --dist loadfile -p no:cacheprovider tests/unit tools/armsim/tests tests/integration tests/reliability >"$log" 2>&1; then
    echo "under_load: run $i of $runs passed in $(( $(date +%s) - start )) s beside a CPU hog: $(tail -n 1 "$log")"
  else
    echo "under_load: run $i of $runs FAILED after $(( $(date +%s) - start )) s (full output: $log):"
    grep -E '^(FAILED|ERROR) ' "$log" || tail -n 40 "$log"
    exit 1
  fi
done

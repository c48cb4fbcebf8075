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
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  ANSIBLE_COLLECTIONS_PATH=$PWD/.build/collections PYTHONPATH=$PWD/tools \
    .venv/bin/pytest -q -n 2 --dist loadfile -p no:cacheprovider tests/unit tools/armsim/tests tests/integration tests/reliability \
    | tail -n 1
  echo "under_load: run $i of $runs passed in $(( $(date +%s) - start )) s beside a CPU hog"
done

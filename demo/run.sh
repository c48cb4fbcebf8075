#!/usr/bin/env bash
# make demo: JIT fleet rollout (audit, then enforce) and the open/configure/close pattern, against
# armsim - the offline Azure in tools/armsim. No Azure account needed; nothing leaves 127.0.0.1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/demo/out"
PY="$ROOT/.venv/bin/python"
export PATH="$ROOT/.venv/bin:$PATH"
export PYTHONPATH="$ROOT/tools"
export ANSIBLE_COLLECTIONS_PATH="${ANSIBLE_COLLECTIONS_PATH:-$ROOT/.build/collections}"
export ANSIBLE_NOCOLOR=1 ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_INVENTORY_UNPARSED_WARNING=False ANSIBLE_RETRY_FILES_ENABLED=False
export ANSIBLE_CALLBACKS_ENABLED=jitaccess.azure.jit_guard
ARMSIM_PID=""
START=$(date +%s)

cleanup() {
  if [[ -n "$ARMSIM_PID" ]] && kill -0 "$ARMSIM_PID" 2>/dev/null; then
    kill "$ARMSIM_PID" 2>/dev/null || true
    wait "$ARMSIM_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT INT TERM

step() { printf '\n== %s\n' "$*"; }
run_logged() {  # run_logged LOG command...: keep the full output in LOG, show the last lines on failure
  local log="$1"; shift
  if ! "$@" >"$log" 2>&1; then
    echo "   FAILED - last lines of $log:"; tail -n 40 "$log"; exit 1
  fi
}

rm -rf "$OUT" && mkdir -p "$OUT"

step "Starting armsim with a generated fleet (4 resource groups, 2 regions, Linux and Windows) plus rg-demo"
"$PY" -m armsim fleet --vms 40 --resource-groups 4 --locations 2 --windows-fraction 0.3 \
  --no-nsg-fraction 0.05 --open-ssh-fraction 0.05 --seed 7 --output "$OUT/fleet.yaml"
"$PY" "$ROOT/demo/demo_tool.py" seed "$OUT/fleet.yaml" "$ROOT/demo/demo_hosts.yaml" > "$OUT/seed.yaml"
"$PY" -m armsim serve --seed "$OUT/seed.yaml" --ready-file "$OUT/ready.json" --apply-delay 2 \
  --state-dir "$OUT/armsim" 2>"$OUT/armsim.log" &
ARMSIM_PID=$!
for _ in $(seq 1 100); do [[ -s "$OUT/ready.json" ]] && break; sleep 0.1; done
[[ -s "$OUT/ready.json" ]] || { echo "armsim did not start:"; cat "$OUT/armsim.log"; exit 1; }
eval "$("$PY" "$ROOT/demo/demo_tool.py" env "$OUT/ready.json")"
echo "   armsim is up (HTTPS on 127.0.0.1, TLS verified with its own CA); 45 VMs"

step "1/3 Fleet rollout, audit mode (reads only): ansible-playbook jitaccess.azure.enable_jit_fleet"
run_logged "$OUT/audit.log" ansible-playbook jitaccess.azure.enable_jit_fleet \
  -e jit_fleet_mode=audit -e "jit_fleet_report_dir=$OUT" -e jit_fleet_report_name=audit
grep -E '"JIT fleet|"candidates|"reachable' "$OUT/audit.log" | sed 's/^ *"/   /; s/",\?$//'

step "2/3 Fleet rollout, enforce mode: -e jit_fleet_mode=enforce"
run_logged "$OUT/enforce.log" ansible-playbook jitaccess.azure.enable_jit_fleet \
  -e jit_fleet_mode=enforce -e "jit_fleet_report_dir=$OUT" -e jit_fleet_report_name=enforce
grep -E '"JIT fleet|"candidates|"reachable' "$OUT/enforce.log" | sed 's/^ *"/   /; s/",\?$//'

step "3/3 Open / configure / close: ansible-playbook jitaccess.azure.configure_with_jit (jit_guard enabled)"
"$PY" "$ROOT/demo/demo_tool.py" inventory "$OUT/ready.json" "$OUT/inventory.ini"
echo "   port 22 before (JIT deny rule in place):"
"$PY" "$ROOT/demo/demo_tool.py" probe "$OUT/ready.json"
run_logged "$OUT/configure.log" ansible-playbook -i "$OUT/inventory.ini" jitaccess.azure.configure_with_jit \
  -e '{"jit_access_source_address_prefixes": ["127.0.0.1"], "jit_access_ports": [22], "jit_access_duration": "15m"}' \
  -e '{"jit_access_port_search_regex": "^armsim"}' \
  -e "configure_with_jit_marker=$OUT/{{ inventory_hostname }}.configured"
CLOSED_AT=$(date -u +%Y-%m-%dT%H:%M:%S)
echo "   one JIT request for both hosts, waited until each port answered, configured, closed in 'always':"
echo "   configured: $(cd "$OUT" && ls -- *.configured | tr '\n' ' ')"
grep -E 'jit_guard' "$OUT/configure.log" | sed 's/^/   /' || true
echo "   port 22 after the play:"
"$PY" "$ROOT/demo/demo_tool.py" probe "$OUT/ready.json"

step "Summary"
"$PY" "$ROOT/demo/demo_tool.py" summary "$OUT"
"$PY" "$ROOT/demo/demo_tool.py" access "$ARMSIM_ADMIN_URL" "$CLOSED_AT"
echo
echo "   Reports: $OUT/enforce.html (open it in a browser), $OUT/enforce.md and $OUT/enforce.json; audit: $OUT/audit.html"
echo "   Full playbook output: $OUT/*.log"
cleanup
echo "   armsim stopped. Done in $(( $(date +%s) - START )) s."

#!/usr/bin/env bash
# make sandbox: armsim with the demo fleet, kept running until Ctrl-C, so you can poke at it with
# the collection: ansible-doc, a facts run, an open and a close. Nothing leaves 127.0.0.1.
#   SANDBOX_DIR   where the env file, inventory and armsim's state go (default .build/sandbox)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${SANDBOX_DIR:-$ROOT/.build/sandbox}"
PY="$ROOT/.venv/bin/python"
export PYTHONPATH="$ROOT/tools"
ARMSIM_PID=""

# Ctrl-C reaches armsim too (same process group) and it may be gone before this runs: stop and
# reap it either way, so the message never depends on who was faster.
cleanup() {
  if [[ -n "$ARMSIM_PID" ]]; then
    kill "$ARMSIM_PID" 2>/dev/null || true
    wait "$ARMSIM_PID" 2>/dev/null || true
    echo "sandbox: armsim stopped"
  fi
  rm -f "$DIR/env.sh"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

rm -rf "$DIR" && mkdir -p "$DIR" && chmod 700 "$DIR"
"$PY" -m armsim fleet --vms 40 --resource-groups 4 --locations 2 --windows-fraction 0.3 \
  --no-nsg-fraction 0.05 --open-ssh-fraction 0.05 --seed 7 --output "$DIR/fleet.yaml"
"$PY" "$ROOT/demo/demo_tool.py" seed "$DIR/fleet.yaml" "$ROOT/demo/demo_hosts.yaml" > "$DIR/seed.yaml"
"$PY" -m armsim serve --seed "$DIR/seed.yaml" --ready-file "$DIR/ready.json" --apply-delay 2 \
  --state-dir "$DIR/armsim" 2>"$DIR/armsim.log" &
ARMSIM_PID=$!
for _ in $(seq 1 300); do [[ -s "$DIR/ready.json" ]] && break; sleep 0.1; done
[[ -s "$DIR/ready.json" ]] || { echo "armsim did not start:"; cat "$DIR/armsim.log"; exit 1; }
"$PY" "$ROOT/demo/demo_tool.py" inventory "$DIR/ready.json" "$DIR/inventory.ini"
umask 077  # the env file holds armsim's client secret
{
  "$PY" "$ROOT/demo/demo_tool.py" env "$DIR/ready.json"
  echo "export ANSIBLE_COLLECTIONS_PATH=\"$ROOT/.build/collections\""
  echo "export ANSIBLE_CALLBACKS_ENABLED=jitaccess.azure.jit_guard"
  echo "export ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_INVENTORY_UNPARSED_WARNING=False"
  echo "export PATH=\"$ROOT/.venv/bin:\$PATH\""
} > "$DIR/env.sh"

cat <<TEXT
sandbox: armsim is up with the demo fleet (45 VMs; rg-demo holds demo-web-1, demo-web-2 with a
data-plane gate on port 22, demo-win-1, demo-bastion, demo-legacy). In another terminal:

  source $DIR/env.sh

  ansible-doc jitaccess.azure.jit_request
  ansible localhost -m jitaccess.azure.nsg_jit_facts -a '{"resource_groups": ["rg-demo"], "detail": "summary"}'
  ansible localhost -m jitaccess.azure.jit_policy -a '{"virtual_machines": [{"name": "demo-web-1", "resource_group": "rg-demo"}, {"name": "demo-web-2", "resource_group": "rg-demo"}], "ports": [{"number": 22}]}'
  ansible localhost -m jitaccess.azure.jit_request -a '{"virtual_machines": [{"name": "demo-web-1", "resource_group": "rg-demo"}], "ports": [22], "source_address_prefixes": ["127.0.0.1"], "duration": "15m"}'
  ansible localhost -m jitaccess.azure.jit_request -a '{"virtual_machines": [{"name": "demo-web-1", "resource_group": "rg-demo"}], "ports": [22], "state": "absent"}'
  ansible-playbook -i $DIR/inventory.ini jitaccess.azure.configure_with_jit -e '{"jit_access_source_address_prefixes": ["127.0.0.1"], "jit_access_port_search_regex": "^armsim"}'

Port 22 of demo-web-1 answers on 127.0.0.1:$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["gates"]["demo-web-1:22"])' "$DIR/ready.json") while JIT access is open.
Ctrl-C stops armsim.
TEXT
wait "$ARMSIM_PID"

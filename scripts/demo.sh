#!/usr/bin/env bash
# The main job on a fresh machine, without Docker: start the loopback stand-ins, point pma-sso at
# them with a throwaway .env and a copy of packages/, run `fix-all`, then `check`, and print the
# result. Everything lives in a temp directory that is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

cargo build --quiet --bin pma-sso --bin platform-sim

work=$(mktemp -d)
sim_pid=
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cp -r packages "$work/"
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
"$root/target/debug/platform-sim" --token "$token" --env-out "$work/sim.env" >"$work/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 1 100); do [ -s "$work/sim.env" ] && break; sleep 0.1; done
[ -s "$work/sim.env" ] || { echo "the stand-ins did not start:"; cat "$work/sim.log"; exit 2; }

{
  echo "DOMAIN=example.org"
  echo "AUTHENTIK_TOKEN=$token"
  echo "PMA_SSO_EXEC_RUNNER=$root/scripts/show-exec.sh"
  cat "$work/sim.env"
} >"$work/.env"
export PMA_SSO_ENV_FILE="$work/.env"
pma="$root/target/debug/pma-sso"

echo "== pma-sso fix-all (stand-ins on loopback, workdir $work)"
"$pma" --inline fix-all || echo "(fix-all reported errors; see above)"
echo
echo "== pma-sso check"
"$pma" --inline check

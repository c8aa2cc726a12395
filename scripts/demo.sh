#!/usr/bin/env bash
# The main job on a fresh machine, without Docker: start the loopback stand-ins (authentik,
# Wiki.js, Frappe, Zammad), a pma-sso worker and `pma-sso serve` against the local PostgreSQL and
# RabbitMQ, then `pma-sso fix-all`, `pma-sso check` and `pma-sso verify` through the job queue, and print the
# result. Without
# PostgreSQL/RabbitMQ it runs the same flows in-process (--inline). Everything lives in a temp
# directory (and a throwaway database) removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

cargo build --quiet --bin pma-sso --bin pma-sso-worker --bin platform-sim

work=$(mktemp -d)
pids=()
db_name=
pg_admin=
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$db_name" ]; then
    psql "$pg_admin" -qc "drop database if exists $db_name with (force)" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

cp -r packages "$work/"
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
"$root/target/debug/platform-sim" --token "$token" --env-out "$work/sim.env" >"$work/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/sim.env" ] && break; sleep 0.1; done
[ -s "$work/sim.env" ] || { echo "the stand-ins did not start:"; cat "$work/sim.log"; exit 2; }

{
  echo "DOMAIN=example.org"
  echo "AUTHENTIK_TOKEN=$token"
  echo "PMA_SSO_EXEC_RUNNER=$root/scripts/show-exec.sh"
  cat "$work/sim.env"
} >"$work/.env"
chmod 600 "$work/.env"
export PMA_SSO_ENV_FILE="$work/.env"
pma="$root/target/debug/pma-sso"

mode=--inline
if command -v psql >/dev/null && (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  for user in postgres root; do
    if psql "postgres://$user@127.0.0.1:5432/postgres" -qtAc 'select 1' >/dev/null 2>&1; then
      pg_admin="postgres://$user@127.0.0.1:5432/postgres"
      break
    fi
  done
fi
if [ -n "$pg_admin" ]; then
  db_name="pma_sso_demo_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  psql "$pg_admin" -qc "create database $db_name" >/dev/null
  export DATABASE_URL="${pg_admin%/*}/$db_name"
  export PMA_SSO_QUEUE_PREFIX="pma-sso-demo-$db_name" PMA_SSO_QUEUE_EXPIRES=10m PMA_SSO_WORKER_HTTP=off
  PMA_SSO_LOG=warn "$root/target/debug/pma-sso-worker" 2>"$work/worker.log" &
  pids+=($!)
  # serve: the webhook receiver, the cron sweep and the status page, on loopback ports.
  PMA_SSO_WEBHOOK_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n') \
  PMA_SSO_WEBHOOK_ADDR=127.0.0.1:0 PMA_SSO_STATUS_ADDR=127.0.0.1:0 PMA_SSO_AUTHENTIK_USER=akadmin \
  PMA_SSO_LOG=warn "$root/target/debug/pma-sso" serve >"$work/serve.out" 2>"$work/serve.log" &
  pids+=($!)
  mode=
  echo "== worker and serve started (PostgreSQL $DATABASE_URL, RabbitMQ 127.0.0.1:5672); jobs go through the queue"
else
  echo "== PostgreSQL or RabbitMQ not reachable on 127.0.0.1: running the flows in-process (--inline)"
fi

echo "== pma-sso fix-all (stand-ins on loopback, workdir $work)"
"$pma" $mode fix-all || echo "(fix-all reported errors; see above)"
echo
echo "== pma-sso check"
status=0
"$pma" $mode check || status=$?
echo
echo "== pma-sso verify (the login path: discovery, JWKS, token grant, redirects, SAML metadata)"
"$pma" $mode verify || status=$?
if [ -s "$work/serve.out" ]; then
  echo
  echo "== serve: $(head -n1 "$work/serve.out")"
fi
exit "$status"

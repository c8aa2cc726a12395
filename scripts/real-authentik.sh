#!/usr/bin/env bash
# Start or stop the real authentik 2025.12.4 (../shared/authentik/server) that the contract
# tests run against: its own database (dropped and made anew at every start, so every run
# begins from a fresh authentik) on a free loopback port.
#
#   eval "$(bash scripts/real-authentik.sh start)"   # exports PMA_SSO_REAL_AUTHENTIK=<env file>
#   cargo test --workspace                           # the contract tests now run against it
#   bash scripts/real-authentik.sh stop              # stops it and drops its database
#
# Settings: AK_HOME (default /tmp/authentik-real: the venv there is reused between runs),
# AK_DB (default pma_sso_contract), AK_PORT (default: a free port), AK_BIND (default 127.0.0.1).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
server="${PMA_SSO_AUTHENTIK_SERVER:-$here/../shared/authentik/server}"
export AK_HOME="${AK_HOME:-/tmp/authentik-real}"
export AK_DB="${AK_DB:-pma_sso_contract}"

case "${1:-}" in
  start)
    [ -f "$server/start.sh" ] || { echo "no real authentik here: $server/start.sh is missing" >&2; exit 3; }
    # A fresh database every time: the transcript test needs authentik as it comes.
    DROP_DB=1 bash "$server/stop.sh" >/dev/null 2>&1 || true
    if [ -z "${AK_PORT:-}" ]; then
      AK_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    fi
    export AK_PORT
    started=$(date +%s)
    if ! bash "$server/start.sh" >"$AK_HOME.start.log" 2>&1; then
      echo "real authentik did not start; the tail of its start log:" >&2
      tail -n 40 "$AK_HOME.start.log" >&2
      exit 1
    fi
    echo "# real authentik 2025.12.4 up on port $AK_PORT in $(( $(date +%s) - started )) s" >&2
    echo "export PMA_SSO_REAL_AUTHENTIK=$AK_HOME/env"
    ;;
  stop)
    [ -f "$server/stop.sh" ] || exit 0
    DROP_DB=1 bash "$server/stop.sh" >/dev/null 2>&1 || true
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac

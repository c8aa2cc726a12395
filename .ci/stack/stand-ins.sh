#!/bin/sh
# platform-sim serves the Wiki.js, Frappe and Zammad stand-ins on loopback (random ports); socat
# makes each reachable from the other containers on a fixed port: Wiki.js 3000, Frappe 8000,
# Zammad 3001. The stand-ins' own credentials are in /tmp/stand-ins.env.
set -eu
: "${AUTHENTIK_SIM_TOKEN:=unused-$(date +%s%N)}"
export AUTHENTIK_SIM_TOKEN
platform-sim --env-out /tmp/stand-ins.env &
sim=$!
while [ ! -s /tmp/stand-ins.env ]; do
  kill -0 "$sim" || exit 1
  sleep 0.2
done
port() { sed -n "s|^$1=http://127.0.0.1:\([0-9]*\).*|\1|p" /tmp/stand-ins.env; }
socat TCP-LISTEN:3000,fork,reuseaddr "TCP:127.0.0.1:$(port WIKIJS_URL)" &
socat TCP-LISTEN:8000,fork,reuseaddr "TCP:127.0.0.1:$(port ERPNEXT_URL)" &
socat TCP-LISTEN:3001,fork,reuseaddr "TCP:127.0.0.1:$(port ZAMMAD_URL)" &
echo "stand-ins ready" >/tmp/ready
wait "$sim"

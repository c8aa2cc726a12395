#!/bin/sh
# Demo exec runner: there are no service containers on a machine without Docker, so instead of
# `docker compose exec -T` the demo prints what would run (secrets are passed with `-e NAME`
# and never appear here).
printf '    [exec] %s\n' "$*" >&2

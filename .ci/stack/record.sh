#!/bin/sh
# An `exec` delivery's command, recorded instead of run: who ran it, the program, its
# arguments, and the names (never the values) of the SSO_* variables it was given. A value of
# such a variable that appears in an argument is written as ***.
line="$(id -un) $(basename "$0")"
for a in "$@"; do line="$line $a"; done
names=$(env | sed -n 's/^\(SSO_[A-Z0-9_]*\)=.*/\1/p' | sort | tr '\n' ' ')
LINE="$line" awk 'BEGIN {
  line = ENVIRON["LINE"]
  for (k in ENVIRON) if (k ~ /^SSO_/ && ENVIRON[k] != "") {
    v = ENVIRON[k]; out = ""
    while ((i = index(line, v)) > 0) { out = out substr(line, 1, i - 1) "***"; line = substr(line, i + length(v)) }
    line = out line
  }
  print line
}' | tr '\n' ' ' >>/records/commands.log
printf '| env: %s\n' "$names" >>/records/commands.log

#!/bin/sh
# The official rabbitmq image's contract, as far as the stack uses it: RABBITMQ_DEFAULT_USER
# and RABBITMQ_DEFAULT_PASS.
set -eu
umask 077
cat >/var/lib/rabbitmq/rabbitmq.conf <<CONF
default_user = $RABBITMQ_DEFAULT_USER
default_pass = $RABBITMQ_DEFAULT_PASS
loopback_users = none
listeners.tcp.default = 5672
CONF
export RABBITMQ_CONFIG_FILE=/var/lib/rabbitmq/rabbitmq.conf
exec rabbitmq-server

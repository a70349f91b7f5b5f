#!/usr/bin/env bash
# Makes sure the services feira needs run on loopback: PostgreSQL (5432),
# RabbitMQ (5672) and Redis (6379). Installs them from Debian's packages when missing (root
# only), starts them when stopped, and waits until they answer.
set -euo pipefail

log() { printf 'ensure-services: %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local name=$1 port=$2
  for _ in $(seq 1 60); do
    if port_open "$port"; then return 0; fi
    sleep 1
  done
  log "$name did not open port $port within 60 s"
  return 1
}

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "$* missing and not root: install it yourself"
    return 1
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL
if ! port_open 5432; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql postgresql-contrib
  fi
  version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port PostgreSQL 5432
fi
# Trust auth for loopback is how this machine kind is set up; a fresh Debian
# install uses peer/scram, so accept connections as postgres on 127.0.0.1.
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    log "allowing trust auth on loopback in $hba"
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  fi
  psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null
fi

# RabbitMQ
if ! port_open 5672; then
  command -v rabbitmq-server >/dev/null 2>&1 || apt_install rabbitmq-server
  log "starting RabbitMQ"
  rabbitmq-server -detached || true
  wait_port RabbitMQ 5672
fi
# The port opens before the broker accepts AMQP; wait until it does.
for _ in $(seq 1 60); do
  if command -v rabbitmq-diagnostics >/dev/null 2>&1; then
    rabbitmq-diagnostics -q check_running >/dev/null 2>&1 && break
  else
    break
  fi
  sleep 1
done

# Redis (caches; services answer from their databases without it)
if ! port_open 6379; then
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null
  wait_port Redis 6379
fi

log "PostgreSQL, RabbitMQ and Redis are up"

#!/usr/bin/env bash
# A real PostgreSQL hot standby of the local cluster, for tests and local
# runs of services that read from a replica (FEIRA_<SERVICE>_READ_DATABASE_URL).
#
#   scripts/pg-replica.sh start   [port=5433] [dir=/var/lib/postgresql/feira-replica]
#   scripts/pg-replica.sh stop    [port=5433] [dir=...]
#   scripts/pg-replica.sh destroy [port=5433] [dir=...]
#   scripts/pg-replica.sh status  [port=5433] [dir=...]
#
# `start` is idempotent: when the port already answers as a standby it does
# nothing. Otherwise it lets the primary accept replication connections from
# 127.0.0.1 (pg_hba.conf, then a reload), takes a base backup of the WHOLE
# cluster with pg_basebackup (-R: the backup becomes a standby of the primary;
# a physical replication slot keeps the WAL it has not received yet), and
# starts it with pg_ctl on `port`, listening on 127.0.0.1 and /tmp. It prints
# the port on stdout when the standby accepts connections and streams. An
# existing replica directory is reused (it catches up through its slot); one
# that cannot stream any more is rebuilt.
#
# Replication is ASYNCHRONOUS streaming: a commit on the primary returns
# before the standby has replayed it, so the replica lags (usually by
# milliseconds, more under load or after a pause). Readers of the replica
# must tolerate stale reads; a write's own answer must come from the primary,
# and a test that reads its writes back from the replica first waits for
# replay (platform::testing::ReplicaInfo::wait_replicated).
#
# Every database of the primary is on the replica, including the ones created
# later (CREATE DATABASE is replicated too); the replica is read-only.
#
# `stop` stops the standby and keeps its data and slot (a later `start`
# catches up). The slot makes the primary keep WAL for the standby while it is
# stopped: `destroy` stops it, drops the slot and removes the directory.
#
# Concurrent callers (several test processes) are serialized with flock on
# /tmp/feira-pg-replica.lock. Runs as root (the server runs as the postgres
# OS user through runuser) or as postgres.
#
# Environment: PG_PRIMARY_HOST (127.0.0.1), PG_PRIMARY_PORT (5432),
# PG_BINDIR (/usr/lib/postgresql/<primary's major version>/bin).
set -euo pipefail

usage() {
  echo "usage: $0 start|stop|destroy|status [port=5433] [dir=/var/lib/postgresql/feira-replica]" >&2
  exit 2
}

log() { printf 'pg-replica: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

[ $# -ge 1 ] || usage
cmd=$1
port=${2:-5433}
dir=${3:-/var/lib/postgresql/feira-replica}
case $port in '' | *[!0-9]*) usage ;; esac

primary_host=${PG_PRIMARY_HOST:-127.0.0.1}
primary_port=${PG_PRIMARY_PORT:-5432}
slot="feira_replica_${port}"
lock=/tmp/feira-pg-replica.lock

# Runs a command as the postgres OS user.
as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  elif [ "$(id -un)" = postgres ]; then
    "$@"
  else
    die "run as root or as postgres"
  fi
}

primary_sql() {
  psql -X -h "$primary_host" -p "$primary_port" -U postgres -d postgres -v ON_ERROR_STOP=1 -tAqc "$1"
}

replica_sql() {
  psql -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAqc "$1" 2>/dev/null
}

bindir() {
  if [ -z "${PG_BINDIR:-}" ]; then
    local major
    if [ -f "$dir/PG_VERSION" ]; then
      major=$(cat "$dir/PG_VERSION")
    else
      major=$(($(primary_sql 'SHOW server_version_num') / 10000))
    fi
    PG_BINDIR="/usr/lib/postgresql/$major/bin"
  fi
  echo "$PG_BINDIR"
}

# "t" when the port answers as a standby, "f" when it answers as a primary,
# nothing when nothing answers.
in_recovery() { replica_sql 'SELECT pg_is_in_recovery()' || true; }

streaming() { [ "$(replica_sql 'SELECT count(*) FROM pg_stat_wal_receiver WHERE status = '\''streaming'\''' || true)" = 1 ]; }

# The standby's server process is running (it may not accept connections yet).
running() { [ -f "$dir/postmaster.pid" ] && as_postgres "$(bindir)/pg_ctl" status -D "$dir" >/dev/null 2>&1; }

ensure_primary() {
  local wal_level senders hba
  wal_level=$(primary_sql 'SHOW wal_level')
  senders=$(primary_sql 'SHOW max_wal_senders')
  case $wal_level in
    replica | logical) ;;
    *) die "the primary has wal_level=$wal_level: set wal_level=replica and restart it" ;;
  esac
  [ "$senders" -gt 0 ] || die "the primary has max_wal_senders=0: raise it and restart the primary"
  hba=$(primary_sql 'SHOW hba_file')
  if ! grep -Eq '^[[:space:]]*host[[:space:]]+replication[[:space:]]+postgres[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
    log "allowing replication connections from 127.0.0.1 in $hba"
    printf '%s\n' 'host replication postgres 127.0.0.1/32 trust' >>"$hba"
    primary_sql 'SELECT pg_reload_conf()' >/dev/null
    # The postmaster re-reads pg_hba.conf asynchronously after the signal.
    sleep 1
  fi
}

# Writes the standby's own configuration: a Debian cluster keeps
# postgresql.conf and pg_hba.conf in /etc, so the base backup has neither.
write_config() {
  # A standby needs at least the primary's values of these.
  local name limits=""
  for name in max_connections max_worker_processes max_wal_senders max_prepared_transactions \
    max_locks_per_transaction; do
    limits+="$name = $(primary_sql "SHOW $name")"$'\n'
  done
  as_postgres tee "$dir/postgresql.conf" >/dev/null <<EOF
# feira's local hot standby (scripts/pg-replica.sh); port and sockets come
# from the pg_ctl command line. Connection settings of the primary are in
# postgresql.auto.conf (pg_basebackup -R).
hot_standby = on
# The primary keeps rows the standby's queries still see, so replay is not
# held back by query conflicts.
hot_standby_feedback = on
max_standby_streaming_delay = 5s
wal_receiver_status_interval = 1s
shared_buffers = 32MB
# Tests create and drop many databases (each CREATE DATABASE writes its
# template to the WAL): restart points often, so the standby's pg_wal stays
# around max_wal_size instead of holding minutes of the primary's WAL.
checkpoint_timeout = 30s
max_wal_size = 128MB
min_wal_size = 32MB
logging_collector = off
$limits
EOF
  as_postgres tee "$dir/pg_hba.conf" >/dev/null <<'EOF'
local all all trust
host all all 127.0.0.1/32 trust
EOF
  as_postgres touch "$dir/pg_ident.conf"
}

base_backup() {
  log "taking a base backup of $primary_host:$primary_port into $dir (slot $slot)"
  as_postgres rm -rf "$dir"
  install -d -m 700 -o postgres -g postgres "$dir"
  # A slot left over by an earlier replica on this port would hold WAL from
  # its own position; start from a fresh one.
  primary_sql "SELECT pg_drop_replication_slot('$slot') FROM pg_replication_slots WHERE slot_name = '$slot' AND NOT active" >/dev/null
  as_postgres "$(bindir)/pg_basebackup" -h "$primary_host" -p "$primary_port" -U postgres \
    -D "$dir" -R -X stream -c fast -C -S "$slot"
  write_config
  as_postgres touch "$dir/.feira-replica-complete"
}

start_server() {
  # 9>&-: the server must not inherit (and so hold forever) the lock.
  as_postgres "$(bindir)/pg_ctl" start -D "$dir" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k /tmp -c hot_standby=on -c listen_addresses=127.0.0.1" >/dev/null 9>&-
}

stop_server() {
  if running; then
    as_postgres "$(bindir)/pg_ctl" stop -D "$dir" -m fast -w -t 60 >/dev/null
  fi
}

# Waits until the standby accepts connections, reports recovery and streams.
wait_streaming() {
  for _ in $(seq 1 "$1"); do
    if [ "$(in_recovery)" = t ] && streaming; then return 0; fi
    sleep 0.5
  done
  return 1
}

start() {
  local state
  state=$(in_recovery)
  if [ "$state" = t ]; then
    echo "$port"
    return 0
  fi
  [ -z "$state" ] || die "port $port answers but is not a standby (pg_is_in_recovery() = $state)"

  ensure_primary
  if [ -f "$dir/.feira-replica-complete" ] && [ "$(primary_sql "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot'")" = 0 ]; then
    log "the slot $slot of the standby in $dir is gone (its WAL may be too); rebuilding it"
  elif [ -f "$dir/.feira-replica-complete" ]; then
    log "starting the existing standby in $dir"
    write_config
    start_server || true
    if wait_streaming 60; then
      echo "$port"
      return 0
    fi
    log "the standby in $dir does not stream (last log lines below); rebuilding it"
    tail -n 20 "$dir/server.log" >&2 || true
    stop_server || true
  fi

  base_backup
  start_server || {
    tail -n 40 "$dir/server.log" >&2 || true
    die "the standby did not start"
  }
  if ! wait_streaming 120; then
    tail -n 40 "$dir/server.log" >&2 || true
    die "the standby on port $port does not stream from the primary"
  fi
  log "hot standby of $primary_host:$primary_port streaming on 127.0.0.1:$port ($(du -sh "$dir" | cut -f1))"
  echo "$port"
}

destroy() {
  stop_server || true
  primary_sql "SELECT pg_drop_replication_slot('$slot') FROM pg_replication_slots WHERE slot_name = '$slot' AND NOT active" >/dev/null
  as_postgres rm -rf "$dir"
  log "removed $dir and slot $slot"
}

exec 9>>"$lock"
flock -w 600 9 || die "another pg-replica.sh held $lock for 10 minutes"

case $cmd in
  start) start ;;
  stop) stop_server ;;
  destroy) destroy ;;
  status)
    if [ "$(in_recovery)" = t ] && streaming; then
      echo "streaming on 127.0.0.1:$port"
    else
      echo "not running on port $port"
      exit 3
    fi
    ;;
  *) usage ;;
esac

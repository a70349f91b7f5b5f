#!/usr/bin/env bash
# POST /orders benchmark: feira (release build) under wrk, the order sagas
# settling after the load stops, and pgbench running the same transaction
# straight against PostgreSQL, all in one run. See bench/README.md.
#
# feira runs as `feira up`: every service (12 today) in one process, each on
# its default port + BENCH_PORT_OFFSET, with its own database
# feira_bench_<service>, the AMQP namespace `bench` and the Redis prefix
# `bench:`, so nothing of a developer's installation (or of bench/checkout.sh,
# which uses bench_checkout) is touched. wrk sends POST /orders straight to
# the orders service with the headers the gateway and the cart's checkout
# set (x-feira-user-id, x-feira-roles: customer, x-feira-channel: cart).
#
# The orders' product ids are not in the catalog: each order's saga asks the
# catalog to reserve stock (ReserveStockV1), the catalog rejects the unknown
# products and the order ends CANCELLED (out_of_stock), with its e-mails
# written by notifications. No order is ever confirmed, so invoices (which
# react to OrderConfirmedV1) issue nothing. That is fine here: the benchmark
# measures the POST /orders path; the saga's work runs alongside the load as
# it would in production, and "settled" below is the time until every order
# placed has left PENDING and the orders outbox is empty.
#
# Usage: bash bench/orders.sh
# Tunables (environment):
#   BENCH_DURATION=15          seconds per measured run (wrk and pgbench)
#   BENCH_WARMUP=3             seconds of unmeasured load before each run
#   BENCH_CONNECTIONS="16 64"  concurrency levels (wrk connections, pgbench clients)
#   BENCH_THREADS=2            wrk threads and pgbench -j
#   BENCH_CATCHUP_TIMEOUT=300  seconds to wait for the sagas to settle and the queues to drain
#   BENCH_POLL_INTERVAL=0.25   seconds between settle polls
#   BENCH_PORT_OFFSET=10000    every service listens on its default port + this (orders: 18106)
#   BENCH_BUILD=1              0 skips `cargo build --release -p feira`
#   BENCH_PGHOST=127.0.0.1 BENCH_PGPORT=5432 BENCH_PGUSER=postgres
# Other FEIRA_* variables in the environment (e.g. FEIRA_DATABASE_MAX_CONNECTIONS)
# are passed through to feira.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR="$ROOT/bench"
RESULTS_DIR="$BENCH_DIR/results"

DURATION=${BENCH_DURATION:-15}
WARMUP=${BENCH_WARMUP:-3}
read -r -a CONNECTIONS <<<"${BENCH_CONNECTIONS:-16 64}"
THREADS=${BENCH_THREADS:-2}
CATCHUP_TIMEOUT=${BENCH_CATCHUP_TIMEOUT:-300}
POLL_INTERVAL=${BENCH_POLL_INTERVAL:-0.25}
PORT_OFFSET=${BENCH_PORT_OFFSET:-10000}
PG_HOST=${BENCH_PGHOST:-127.0.0.1}
PG_PORT=${BENCH_PGPORT:-5432}
PG_USER=${BENCH_PGUSER:-postgres}
NAMESPACE=bench
DB_PREFIX=feira_bench_
ORDERS_DB=${DB_PREFIX}orders
SCRATCH_DB=${DB_PREFIX}pgbench
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/feira"
# Every target of `feira up`, its port and database (from `feira targets`),
# plus the pgbench scratch database: the databases this script drops.
declare -a NAMES=() DATABASES=("$SCRATCH_DB")
declare -A PORT=()

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN_DIR="$RESULTS_DIR/$STAMP"
JSON_OUT="$RESULTS_DIR/$STAMP.json"
FEIRA_PID=""
TOP_PID=""
CLEANED=0

export LC_ALL=C

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

# psql on one database, unaligned tuples only, stopping on the first error.
q() {
  PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$1" -tAc "$2"
}

drop_db() {
  q postgres "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null
}

now() { printf '%s' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ensure_cmd() { # ensure_cmd <command> <debian package>
  command -v "$1" >/dev/null 2>&1 && return 0
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "$1 missing: apt-get install -y $2"
    apt-get install -y "$2" >/dev/null 2>&1 || {
      apt-get update >/dev/null 2>&1
      apt-get install -y "$2" >/dev/null
    }
  fi
  command -v "$1" >/dev/null 2>&1 || die "$1 not found (install the Debian package $2)"
}

drop_databases() {
  local db
  for db in "${DATABASES[@]}"; do
    drop_db "$db" 2>/dev/null || log "could not drop $db"
  done
}

cleanup() {
  local rc=$?
  [[ $CLEANED -eq 1 ]] && return
  CLEANED=1
  set +e
  stop_top
  stop_feira
  log "dropping ${DATABASES[*]}, the $NAMESPACE.* queues and the $NAMESPACE:* Redis keys"
  drop_databases
  delete_queues
  delete_redis_keys
  rm -rf "$RUN_DIR/objects" "$RUN_DIR/mail"
  if [[ $rc -ne 0 ]]; then
    log "failed (exit $rc); logs in $RUN_DIR"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- wrk output parsing ------------------------------------------------------

# Milliseconds from a wrk duration such as 812.00us, 4.20ms, 1.03s or 1.50m.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000
    else if (v ~ /ms$/) n += 0
    else if (v ~ /m$/) n *= 60000
    else if (v ~ /s$/) n *= 1000
    printf "%.2f", n
  }'
}

wrk_field() { # wrk_field <output file> <what>
  case $2 in
    rps) awk '/^Requests\/sec:/ { print $2 }' "$1" ;;
    p50) to_ms "$(awk '$1 == "50%" { print $2 }' "$1")" ;;
    p99) to_ms "$(awk '$1 == "99%" { print $2 }' "$1")" ;;
    requests) awk '/ requests in / { print $1 }' "$1" ;;
    non2xx) awk '/Non-2xx or 3xx responses:/ { print $NF; f = 1 } END { if (!f) print 0 }' "$1" ;;
    socket_errors)
      awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10; f = 1 } END { if (!f) print 0 }' "$1"
      ;;
    *) die "wrk_field: unknown field $2" ;;
  esac
}

run_wrk() { # run_wrk <connections> <seconds> <output file>
  wrk -t "$THREADS" -c "$1" -d "${2}s" --timeout 10s --latency \
    -s "$BENCH_DIR/post_order.lua" "$(url orders)/orders" >"$3" 2>&1 ||
    die "wrk failed: $(tail -n 5 "$3")"
}

# --- the sagas settling ------------------------------------------------------------

# "<orders> <pending> <unsent outbox rows>" of the orders database.
orders_state() {
  q "$ORDERS_DB" "SELECT (SELECT count(*) FROM orders) || ' ' ||
                         (SELECT count(*) FROM orders WHERE status = 'PENDING') || ' ' ||
                         (SELECT count(*) FROM outbox WHERE published_at IS NULL)"
}

timed_out() { awk -v s="$(since "$1")" -v t="$CATCHUP_TIMEOUT" 'BEGIN { exit !(s > t) }'; }

# Polls until every order has left PENDING (the catalog rejected its stock,
# so it is CANCELLED) and the orders outbox is empty, then until no queue of
# the namespace holds a message (other than parked or unrouted ones): the
# downstream work (e-mails, stock replies) is done too. Sets DRAIN_S (seconds
# until the orders outbox first had no unsent row), SETTLED_S (no order
# PENDING and the outbox empty), QUIET_S (queues empty too; null on timeout or
# without rabbitmqctl) and FINAL_ORDERS / FINAL_PENDING.
wait_settled() { # wait_settled <start time from now()>
  local start=$1 orders pending unsent busy
  DRAIN_S=null
  SETTLED_S=null
  QUIET_S=null
  while :; do
    # A failed poll (e.g. PostgreSQL out of connections) is retried, never
    # taken for "nothing pending".
    if ! read -r orders pending unsent < <(orders_state) || [[ ! $orders$pending$unsent =~ ^[0-9]+$ ]]; then
      if timed_out "$start"; then
        log "could not read the orders database for ${CATCHUP_TIMEOUT}s; going on"
        return 0
      fi
      sleep "$POLL_INTERVAL"
      continue
    fi
    if [[ $DRAIN_S == null && $unsent -eq 0 ]]; then
      DRAIN_S=$(since "$start")
    fi
    FINAL_ORDERS=$orders
    FINAL_PENDING=$pending
    if ((pending == 0 && unsent == 0)); then
      SETTLED_S=$(since "$start")
      break
    fi
    if timed_out "$start"; then
      log "the sagas did not settle within ${CATCHUP_TIMEOUT}s ($pending of $orders orders PENDING," \
        "$unsent outbox rows unsent); see feira.log and the DLQs"
      return 0
    fi
    sleep "$POLL_INTERVAL"
  done
  command -v rabbitmqctl >/dev/null 2>&1 || return 0
  while :; do
    busy=$(bench_queues | awk '$1 !~ /\.dlq$/ && $1 !~ /\.unrouted$/ { n += $2 } END { print n + 0 }')
    if ((busy == 0)); then
      QUIET_S=$(since "$start")
      return 0
    fi
    if timed_out "$start"; then
      log "$busy messages still queued ${CATCHUP_TIMEOUT}s after the load stopped; going on"
      return 0
    fi
    sleep 1
  done
}

# --- preflight -------------------------------------------------------------------

[[ $DURATION =~ ^[0-9]+$ && $DURATION -gt 0 ]] || die "BENCH_DURATION must be a positive whole number of seconds"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a whole number of seconds"
((${#CONNECTIONS[@]} > 0)) || die "BENCH_CONNECTIONS is empty"
for c in "${CONNECTIONS[@]}"; do
  [[ $c =~ ^[0-9]+$ && $c -gt 0 ]] || die "BENCH_CONNECTIONS: $c is not a positive number"
done
for cmd in psql pgbench curl awk top; do
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found"
done
ensure_cmd wrk wrk
ensure_cmd jq jq
q postgres 'SELECT 1' >/dev/null || die "cannot reach PostgreSQL at $PG_HOST:$PG_PORT as $PG_USER"
command -v rabbitmqctl >/dev/null 2>&1 || log "rabbitmqctl not found: no queue drain wait and no queue clean-up"
max_c=0
for c in "${CONNECTIONS[@]}"; do
  if ((c > max_c)); then max_c=$c; fi
done
pg_free=$(q postgres "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int - count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
((pg_free >= max_c + 2)) || die "PostgreSQL has $pg_free free connections; pgbench -c $max_c needs $((max_c + 2))"
# feira's pools open connections on demand: under this load about half of the
# 12 services' FEIRA_DATABASE_MAX_CONNECTIONS each, plus one outbox listener each.
if ((pg_free < 12 * (${FEIRA_DATABASE_MAX_CONNECTIONS:-10} / 2 + 1))); then
  log "WARNING: PostgreSQL has only $pg_free free connections; feira up may run out (another feira running?)"
fi

mkdir -p "$RUN_DIR"
log "results: $RUN_DIR (json: $JSON_OUT)"

if [[ ${BENCH_BUILD:-1} != 0 ]]; then
  log "cargo build --release -p feira"
  (cd "$ROOT" && cargo build --release -p feira) >"$RUN_DIR/build.log" 2>&1 ||
    die "release build failed: $(tail -n 20 "$RUN_DIR/build.log")"
fi
[[ -x $BIN ]] || die "$BIN not found (build it, or unset BENCH_BUILD=0)"

# Every target, its port and database, from `feira targets` ("name port N ...").
while read -r name _ port _; do
  [[ $port =~ ^[0-9]+$ ]] || continue
  NAMES+=("$name")
  PORT[$name]=$((port + PORT_OFFSET))
  DATABASES+=("$DB_PREFIX${name//-/_}")
done < <("$BIN" targets)
[[ -n ${PORT[orders]:-} ]] || die "feira targets lists no orders service"
for name in "${NAMES[@]}"; do
  if port_busy "${PORT[$name]}"; then die "port ${PORT[$name]} ($name) is in use (set BENCH_PORT_OFFSET)"; fi
done

# Leftovers of an interrupted run would skew the counts.
drop_databases
delete_queues
delete_redis_keys

# --- feira -------------------------------------------------------------------------

url() { printf 'http://127.0.0.1:%s' "${PORT[$1]}"; }
export FEIRA_BIND_HOST=127.0.0.1 FEIRA_AMQP_NAMESPACE=$NAMESPACE FEIRA_LOG_FORMAT=json RUST_LOG=warn
for name in "${NAMES[@]}"; do
  up=${name^^}
  up=${up//-/_}
  export "FEIRA_${up}_PORT=${PORT[$name]}"
  export "FEIRA_${up}_DATABASE_URL=postgres://$PG_USER@$PG_HOST:$PG_PORT/$DB_PREFIX${name//-/_}"
done
# The services' URLs of one another default to the default ports.
declare -A URL_VARS=(
  [FEIRA_CART_CATALOG_URL]=catalog [FEIRA_CART_SHIPPING_URL]=shipping [FEIRA_CART_ORDERS_URL]=orders
  [FEIRA_PAYMENTS_PSP_URL]=psp-sim [FEIRA_PAYMENTS_PUBLIC_URL]=payments [FEIRA_SHIPPING_CARRIER_URL]=carrier-sim
)
for var in "${!URL_VARS[@]}"; do
  if [[ -n ${PORT[${URL_VARS[$var]}]:-} ]]; then export "$var=$(url "${URL_VARS[$var]}")"; fi
done
if [[ -n ${PORT[identity]:-} ]]; then
  FEIRA_GATEWAY_JWKS_URL="$(url identity)/.well-known/jwks.json"
  export FEIRA_GATEWAY_JWKS_URL
fi
export FEIRA_CATALOG_PUBLISHER_STORE="file://$RUN_DIR/objects" FEIRA_NOTIFICATIONS_MAIL_DIR="$RUN_DIR/mail"

log "starting feira up (${#NAMES[@]} services, ports +$PORT_OFFSET, orders :${PORT[orders]}," \
  "namespace $NAMESPACE, databases ${DB_PREFIX}*)"
(cd "$ROOT" && exec "$BIN" up) >"$RUN_DIR/feira.log" 2>&1 &
FEIRA_PID=$!

for name in "${NAMES[@]}"; do
  ready=0
  for ((i = 0; i < 900; i++)); do
    kill -0 "$FEIRA_PID" 2>/dev/null || die "feira exited during start-up: $(tail -n 20 "$RUN_DIR/feira.log")"
    if curl -fsS -o /dev/null --max-time 2 "$(url "$name")/health/ready" 2>/dev/null; then
      ready=1
      break
    fi
    sleep 0.1
  done
  ((ready)) || die "$name not ready after 90 s: $(tail -n 20 "$RUN_DIR/feira.log")"
done
log "feira ready"

declare -A RPS P50 P99 REQS NON2XX SOCKERR PLACED UNSENT PENDING SETTLED QUIET DRAIN TPS PGFAIL ORDERS_END PENDING_END
declare -A CPU_LOAD CPU_CATCHUP CPU_PGBENCH

for c in "${CONNECTIONS[@]}"; do
  if ((WARMUP > 0)); then
    log "c=$c: warm-up ${WARMUP}s"
    run_wrk "$c" "$WARMUP" "$RUN_DIR/wrk-warmup-c$c.txt"
    wait_settled "$(now)"
  fi

  log "c=$c: wrk ${DURATION}s"
  start_top "$RUN_DIR/top-load-c$c.txt"
  run_wrk "$c" "$DURATION" "$RUN_DIR/wrk-c$c.txt"
  stopped=$(now)
  stop_top
  # State at load stop: orders placed (in total, so far), orders whose saga
  # has not ended yet, and rows the relay has not published yet.
  state=$(orders_state) || die "could not read the orders database at load stop"
  read -r placed pending unsent <<<"$state"
  PLACED[$c]=$placed
  PENDING[$c]=$pending
  UNSENT[$c]=$unsent

  start_top "$RUN_DIR/top-catchup-c$c.txt"
  wait_settled "$stopped"
  stop_top
  SETTLED[$c]=$SETTLED_S
  QUIET[$c]=$QUIET_S
  DRAIN[$c]=$DRAIN_S
  ORDERS_END[$c]=$FINAL_ORDERS
  PENDING_END[$c]=$FINAL_PENDING

  f="$RUN_DIR/wrk-c$c.txt"
  RPS[$c]=$(wrk_field "$f" rps)
  P50[$c]=$(wrk_field "$f" p50)
  P99[$c]=$(wrk_field "$f" p99)
  REQS[$c]=$(wrk_field "$f" requests)
  NON2XX[$c]=$(wrk_field "$f" non2xx)
  SOCKERR[$c]=$(wrk_field "$f" socket_errors)
  [[ -n ${RPS[$c]} ]] || die "could not parse $f"
  CPU_LOAD[$c]=$(top_summary "$RUN_DIR/top-load-c$c.txt" "wrk|pgbench|psql")
  CPU_CATCHUP[$c]=$(top_summary "$RUN_DIR/top-catchup-c$c.txt" "wrk|pgbench|psql")
  log "c=$c: ${RPS[$c]} req/s, p50 ${P50[$c]} ms, p99 ${P99[$c]} ms, non-2xx ${NON2XX[$c]};" \
    "at stop: $placed orders, $pending PENDING, outbox unsent $unsent;" \
    "outbox drained ${DRAIN[$c]} s, sagas settled ${SETTLED[$c]} s, queues empty ${QUIET[$c]} s"
  if [[ ${NON2XX[$c]} != 0 || ${SOCKERR[$c]} != 0 ]]; then
    log "c=$c: WARNING ${NON2XX[$c]} non-2xx responses and ${SOCKERR[$c]} socket errors; see $f and feira.log"
  fi
done

# How the sagas ended ({"CANCELLED out_of_stock": n, ...}) and what was
# dead-lettered ({"<queue>": n}).
outcomes=$(q "$ORDERS_DB" "SELECT coalesce(jsonb_object_agg(k, n), '{}') FROM
  (SELECT status || coalesce(' ' || cancel_reason, '') AS k, count(*) AS n FROM orders GROUP BY 1) AS t")
dlq=null
if command -v rabbitmqctl >/dev/null 2>&1; then
  dlq=$(bench_queues | awk '$1 ~ /\.dlq$/ && $2 > 0 { print $1, $2 }' |
    jq -Rn '[inputs | split(" ") | {(.[0]): (.[1] | tonumber)}] | add // {}')
fi
log "saga outcomes: $(jq -c . <<<"$outcomes"); dead-lettered: $dlq"
stop_feira

# --- pgbench -----------------------------------------------------------------------

log "pgbench: scratch database $SCRATCH_DB with the platform and orders migrations"
q postgres "CREATE DATABASE \"$SCRATCH_DB\"" >/dev/null
for f in "$ROOT"/crates/platform/migrations/*.sql "$ROOT"/services/orders/migrations/*.sql; do
  psql -X -q -v ON_ERROR_STOP=1 --single-transaction -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" \
    -d "$SCRATCH_DB" -f "$f" >/dev/null
done

run_pgbench() { # run_pgbench <clients> <seconds> <output file>
  pgbench -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -n -M prepared \
    -c "$1" -j "$THREADS" -T "$2" -f "$BENCH_DIR/order_tx.sql" "$SCRATCH_DB" >"$3" 2>&1 ||
    die "pgbench failed: $(tail -n 5 "$3")"
}

for c in "${CONNECTIONS[@]}"; do
  if ((WARMUP > 0)); then
    log "c=$c: pgbench warm-up ${WARMUP}s"
    run_pgbench "$c" "$WARMUP" "$RUN_DIR/pgbench-warmup-c$c.txt"
  fi
  log "c=$c: pgbench ${DURATION}s"
  start_top "$RUN_DIR/top-pgbench-c$c.txt"
  run_pgbench "$c" "$DURATION" "$RUN_DIR/pgbench-c$c.txt"
  stop_top
  f="$RUN_DIR/pgbench-c$c.txt"
  # "tps = N (without initial connection time)" (PG 14+) or
  # "tps = N (excluding connections establishing)" (older).
  TPS[$c]=$(awk '/^tps = .*(without initial connection time|excluding connections establishing)/ { print $3 }' "$f")
  PGFAIL[$c]=$(awk '/number of failed transactions:/ { print $5; f = 1 } END { if (!f) print 0 }' "$f")
  [[ -n ${TPS[$c]} ]] || die "could not parse tps from $f"
  CPU_PGBENCH[$c]=$(top_summary "$RUN_DIR/top-pgbench-c$c.txt" "wrk|pgbench|psql")
  log "c=$c: pgbench ${TPS[$c]} tps"
done

# --- report --------------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "null" }'; }

printf '\nPOST /orders: feira (release, wrk) vs PostgreSQL alone (pgbench, same transaction)\n'
printf '%s, %s s per run, %s s warm-up, %s CPUs\n\n' "$STAMP" "$DURATION" "$WARMUP" "$(nproc)"
printf '%5s  %9s  %7s  %7s  %11s  %13s  %11s  %12s  %9s  %9s  %8s  %7s  %11s\n' \
  conns "feira rps" "p50 ms" "p99 ms" "pgbench tps" "feira/pgbench" "outbox@stop" "pending@stop" \
  "drained s" "settled s" "settle/s" "quiet s" "other CPU%"
results='[]'
for c in "${CONNECTIONS[@]}"; do
  r=$(ratio "${RPS[$c]}" "${TPS[$c]}")
  settle_rate=$(ratio "${PENDING[$c]}" "${SETTLED[$c]/null/0}")
  other_load=$(jq -r '.other' <<<"${CPU_LOAD[$c]}")
  other_pg=$(jq -r '.other' <<<"${CPU_PGBENCH[$c]}")
  printf '%5s  %9.1f  %7s  %7s  %11.1f  %13s  %11s  %12s  %9s  %9s  %8s  %7s  %11s\n' \
    "$c" "${RPS[$c]}" "${P50[$c]}" "${P99[$c]}" "${TPS[$c]}" "$r" "${UNSENT[$c]}" "${PENDING[$c]}" \
    "${DRAIN[$c]}" "${SETTLED[$c]}" "$settle_rate" "${QUIET[$c]}" "$other_load/$other_pg"
  results=$(jq -c \
    --argjson c "$c" --argjson rps "${RPS[$c]}" --argjson p50 "${P50[$c]}" --argjson p99 "${P99[$c]}" \
    --argjson reqs "${REQS[$c]}" --argjson non2xx "${NON2XX[$c]}" --argjson sockerr "${SOCKERR[$c]}" \
    --argjson tps "${TPS[$c]}" --argjson pgfail "${PGFAIL[$c]}" --argjson ratio "$r" \
    --argjson placed "${PLACED[$c]}" --argjson unsent "${UNSENT[$c]}" --argjson pending "${PENDING[$c]}" \
    --argjson drain "${DRAIN[$c]}" --argjson settled "${SETTLED[$c]}" --argjson quiet "${QUIET[$c]}" \
    --argjson settle_rate "$settle_rate" --argjson orders_end "${ORDERS_END[$c]}" \
    --argjson pending_end "${PENDING_END[$c]}" \
    --argjson cpu_load "${CPU_LOAD[$c]}" --argjson cpu_catchup "${CPU_CATCHUP[$c]}" \
    --argjson cpu_pgbench "${CPU_PGBENCH[$c]}" \
    '. + [{connections: $c,
           feira: {requests_per_sec: $rps, p50_ms: $p50, p99_ms: $p99, requests: $reqs,
                   non_2xx: $non2xx, socket_errors: $sockerr},
           pgbench: {tps: $tps, failed_transactions: $pgfail},
           ratio_feira_over_pgbench: $ratio,
           sagas: {orders_total_at_stop: $placed, pending_at_stop: $pending, outbox_unsent_at_stop: $unsent,
                   outbox_drained_seconds: $drain, settled_seconds: $settled, queues_empty_seconds: $quiet,
                   settled_per_sec_after_stop: $settle_rate,
                   orders_at_end: $orders_end, pending_at_end: $pending_end},
           cpu_percent: {feira_load: $cpu_load, catch_up: $cpu_catchup, pgbench: $cpu_pgbench}}]' \
    <<<"$results")
done
printf '\noutbox@stop / pending@stop: unsent orders outbox rows / orders still PENDING when the load\n'
printf 'stopped; drained s / settled s / quiet s: seconds after the load stopped until the orders outbox was\n'
printf 'empty / no order was PENDING (every saga ended, CANCELLED out_of_stock: the products are not in the\n'
printf 'catalog) / no queue held a message; settle/s: orders settled per second after the load stopped;\n'
printf 'other CPU%%: CPU (100 = one core) used by processes outside the benchmark during the feira / pgbench\n'
printf 'runs; high values mean a noisy, less trustworthy run.\n'

git_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git_status=$(git -C "$ROOT" status --porcelain 2>/dev/null || true)
if grep -v '^?? bench/' <<<"$git_status" | grep -q .; then git_dirty=true; else git_dirty=false; fi
jq -n \
  --arg ts "$STAMP" --arg rev "$git_rev" --argjson dirty "$git_dirty" \
  --argjson duration "$DURATION" --argjson warmup "$WARMUP" --argjson threads "$THREADS" \
  --argjson cpus "$(nproc)" --arg pg "$(q postgres 'SHOW server_version')" \
  --arg pool "${FEIRA_DATABASE_MAX_CONNECTIONS:-10 (default)}" --argjson dlq "$dlq" \
  --argjson services "${#NAMES[@]}" --argjson outcomes "$outcomes" \
  --argjson results "$results" \
  '{timestamp: $ts, git: {rev: $rev, dirty: $dirty}, cpus: $cpus, postgres: $pg,
    duration_seconds: $duration, warmup_seconds: $warmup, threads: $threads, services: $services,
    feira_pool_per_service: $pool, saga_outcomes: $outcomes, dead_lettered: $dlq, results: $results}' >"$JSON_OUT"
log "wrote $JSON_OUT"

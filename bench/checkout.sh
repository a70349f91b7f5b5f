#!/usr/bin/env bash
# Checkout benchmark (issue 4's acceptance): completed checkouts per second
# and the p99 from checkout to CONFIRMED at half of that rate, on this machine.
#
# One run: a release build of `feira up` (every service, on its own ports,
# databases, AMQP namespace and Redis prefix), then `feira load checkout`
# (apps/feira/src/load.rs):
#   (a) closed loop, BENCH_CONCURRENCY shoppers, each checking out again once
#       its order settled, for BENCH_DURATION s: R = completed checkouts/s;
#   (b) open loop at R/2 checkouts/s on a fixed timeline for BENCH_DURATION s:
#       checkout -> CONFIRMED latency measured from each checkout's due time.
# Each run is preceded by an unmeasured warm-up and followed by a wait until
# the downstream work (invoices, e-mails, shipments) has drained from the
# queues, so (b) does not pay for (a)'s backlog.
#
# Usage: bash bench/checkout.sh
# Tunables (environment):
#   BENCH_DURATION=20        seconds of each measured run
#   BENCH_WARMUP=5           seconds of the closed-loop warm-up (0: none)
#   BENCH_CONCURRENCY=64     closed-loop shoppers / open-loop preparers
#   BENCH_PRODUCTS=10        products the seller sells (stock rows reserved from)
#   BENCH_PORT_OFFSET=12000  every service listens on its default port + this
#   BENCH_QUIET_TIMEOUT=180  seconds to wait for the queues to drain between runs
#   BENCH_BUILD=1            0 skips `cargo build --release -p feira`
#   BENCH_PGHOST=127.0.0.1 BENCH_PGPORT=5432 BENCH_PGUSER=postgres
# Other FEIRA_* variables in the environment (e.g. FEIRA_DATABASE_MAX_CONNECTIONS)
# are passed through to feira.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RESULTS_DIR="$ROOT/bench/results"

DURATION=${BENCH_DURATION:-20}
WARMUP=${BENCH_WARMUP:-5}
CONCURRENCY=${BENCH_CONCURRENCY:-64}
PRODUCTS=${BENCH_PRODUCTS:-10}
PORT_OFFSET=${BENCH_PORT_OFFSET:-12000}
QUIET_TIMEOUT=${BENCH_QUIET_TIMEOUT:-180}
PG_HOST=${BENCH_PGHOST:-127.0.0.1}
PG_PORT=${BENCH_PGPORT:-5432}
PG_USER=${BENCH_PGUSER:-postgres}
NAMESPACE=bench_checkout
DB_PREFIX=feira_bench_checkout_
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/feira"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN_DIR="$RESULTS_DIR/checkout-$STAMP"
JSON_OUT="$RESULTS_DIR/checkout-$STAMP.json"
FEIRA_PID=""
TOP_PID=""
CLEANED=0
declare -a NAMES=() DATABASES=()
declare -A PORT=()

export LC_ALL=C

# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

q() { # q <database> <sql>: unaligned tuples only, stopping on the first error
  PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 \
    -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$1" -tAc "$2"
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

drop_databases() {
  local db
  for db in "${DATABASES[@]}"; do
    q postgres "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || log "could not drop $db"
  done
}

# Waits until no queue of the namespace holds a message other than parked
# (.dlq) or unrouted ones: the downstream work of the last run is done.
wait_quiet() {
  local waited=0 busy
  while :; do
    busy=$(bench_queues | awk '$1 !~ /\.dlq$/ && $1 !~ /\.unrouted$/ { n += $2 } END { print n + 0 }')
    if ((busy == 0)); then
      log "queues drained (${waited}s); load average $(loadavg)"
      return 0
    fi
    if ((waited >= QUIET_TIMEOUT)); then
      log "WARNING: $busy messages still queued after ${QUIET_TIMEOUT}s; going on"
      return 0
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

cleanup() {
  local rc=$?
  [[ $CLEANED -eq 1 ]] && return
  CLEANED=1
  set +e
  stop_top
  stop_feira
  log "dropping the ${DB_PREFIX}* databases, the $NAMESPACE.* queues and $NAMESPACE:* Redis keys"
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

# --- preflight ----------------------------------------------------------------------

for v in DURATION CONCURRENCY PRODUCTS; do
  [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "BENCH_$v must be a positive whole number"
done
[[ $WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a whole number of seconds"
for cmd in psql curl awk jq top; do
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found"
done
command -v rabbitmqctl >/dev/null 2>&1 || log "rabbitmqctl not found: no queue drain wait and no queue clean-up"
q postgres 'SELECT 1' >/dev/null || die "cannot reach PostgreSQL at $PG_HOST:$PG_PORT as $PG_USER"

mkdir -p "$RUN_DIR"
log "results: $RUN_DIR (json: $JSON_OUT)"

if [[ ${BENCH_BUILD:-1} != 0 ]]; then
  log "cargo build --release -p feira (load average $(loadavg))"
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
((${#NAMES[@]} > 0)) || die "feira targets listed nothing"
for name in "${NAMES[@]}"; do
  if port_busy "${PORT[$name]}"; then die "port ${PORT[$name]} ($name) is in use (set BENCH_PORT_OFFSET)"; fi
done

# Leftovers of an interrupted run would skew the figures.
drop_databases
delete_queues
delete_redis_keys

# --- feira -----------------------------------------------------------------------------

url() { printf 'http://127.0.0.1:%s' "${PORT[$1]}"; }
export FEIRA_BIND_HOST=127.0.0.1 FEIRA_AMQP_NAMESPACE=$NAMESPACE FEIRA_LOG_FORMAT=json RUST_LOG=warn
for name in "${NAMES[@]}"; do
  up=${name^^}
  up=${up//-/_}
  export "FEIRA_${up}_PORT=${PORT[$name]}"
  export "FEIRA_${up}_DATABASE_URL=postgres://$PG_USER@$PG_HOST:$PG_PORT/$DB_PREFIX${name//-/_}"
done
FEIRA_CART_CATALOG_URL=$(url catalog)
FEIRA_CART_SHIPPING_URL=$(url shipping)
FEIRA_CART_ORDERS_URL=$(url orders)
FEIRA_PAYMENTS_PSP_URL=$(url psp-sim)
FEIRA_PAYMENTS_PUBLIC_URL=$(url payments)
FEIRA_SHIPPING_CARRIER_URL=$(url carrier-sim)
FEIRA_GATEWAY_JWKS_URL="$(url identity)/.well-known/jwks.json"
FEIRA_CATALOG_PUBLISHER_STORE="file://$RUN_DIR/objects"
FEIRA_NOTIFICATIONS_MAIL_DIR="$RUN_DIR/mail"
export FEIRA_CART_CATALOG_URL FEIRA_CART_SHIPPING_URL FEIRA_CART_ORDERS_URL FEIRA_PAYMENTS_PSP_URL \
  FEIRA_PAYMENTS_PUBLIC_URL FEIRA_SHIPPING_CARRIER_URL FEIRA_GATEWAY_JWKS_URL FEIRA_CATALOG_PUBLISHER_STORE \
  FEIRA_NOTIFICATIONS_MAIL_DIR

log "starting feira up (ports +$PORT_OFFSET, namespace $NAMESPACE, databases ${DB_PREFIX}*)"
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
log "feira ready; load average $(loadavg)"

load() { # load <name> <feira load checkout arguments...>: figures in $RUN_DIR/<name>.json
  local name=$1
  shift
  "$BIN" load checkout --concurrency "$CONCURRENCY" --products "$PRODUCTS" \
    --json "$RUN_DIR/$name.json" "$@" 2>&1 | tee "$RUN_DIR/$name.txt" >&2 ||
    die "feira load checkout failed ($name): $(tail -n 5 "$RUN_DIR/$name.txt")"
  kill -0 "$FEIRA_PID" 2>/dev/null || die "feira died during $name: $(tail -n 20 "$RUN_DIR/feira.log")"
}

if ((WARMUP > 0)); then
  log "warm-up: closed loop ${WARMUP}s"
  load warmup --rate 0 --duration "$WARMUP"
  wait_quiet
fi

log "(a) closed loop, $CONCURRENCY shoppers, ${DURATION}s; load average $(loadavg)"
LOAD_A_BEFORE=$(loadavg)
start_top "$RUN_DIR/top-closed.txt"
load closed --rate 0 --duration "$DURATION"
stop_top
LOAD_A_AFTER=$(loadavg)
R=$(jq -r '.completed_per_s' "$RUN_DIR/closed.json")
awk -v r="$R" 'BEGIN { exit !(r > 0) }' || die "no checkout completed in the closed loop; see $RUN_DIR"
HALF=$(awk -v r="$R" 'BEGIN { printf "%.2f", r / 2 }')
wait_quiet

log "(b) open loop at $HALF/s (R/2), ${DURATION}s; load average $(loadavg)"
LOAD_B_BEFORE=$(loadavg)
start_top "$RUN_DIR/top-open.txt"
load open --rate "$HALF" --duration "$DURATION"
stop_top
LOAD_B_AFTER=$(loadavg)

dlq=$(bench_queues | awk '$1 ~ /\.dlq$/ { n += $2 } END { print n + 0 }')
stop_feira

# --- report ------------------------------------------------------------------------------

CPU_A=$(top_summary "$RUN_DIR/top-closed.txt")
CPU_B=$(top_summary "$RUN_DIR/top-open.txt")
P99=$(jq -r '.checkout_to_confirmed.p99_ms // "null"' "$RUN_DIR/open.json")
git_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
rustc_v=$(rustc --version 2>/dev/null || echo unknown)
pg_v=$(q postgres 'SHOW server_version')
rabbit_v=$(rabbitmqctl -q version 2>/dev/null || echo unknown)
redis_v=$(redis-cli --version 2>/dev/null || echo unknown)

printf '\nCheckout benchmark: feira %s (release, git %s), %s\n' "$("$BIN" --version | awk '{ print $2 }')" "$git_rev" "$STAMP"
printf '%s CPUs (%s), %s; PostgreSQL %s, RabbitMQ %s, %s\n' "$(nproc)" \
  "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$rustc_v" "$pg_v" "$rabbit_v" "$redis_v"
printf 'load driver and feira on the same machine; %s products; pool %s per service\n\n' \
  "$PRODUCTS" "${FEIRA_DATABASE_MAX_CONNECTIONS:-10 (default)}"
printf '(a) closed loop, %s shoppers, %s s:  R = %s completed checkouts/s\n' "$CONCURRENCY" "$DURATION" "$R"
jq -r '"    started \(.started), confirmed \(.confirmed), cancelled \(.cancelled), failed \(.failed), unsettled \(.unsettled); checkout -> CONFIRMED p50 \(.checkout_to_confirmed.p50_ms) ms, p99 \(.checkout_to_confirmed.p99_ms) ms"' "$RUN_DIR/closed.json"
printf '    load average %s -> %s; CPU busy %s%%, other processes %s%% of a core\n' "$LOAD_A_BEFORE" "$LOAD_A_AFTER" \
  "$(jq -r .busy <<<"$CPU_A")" "$(jq -r .other <<<"$CPU_A")"
printf '(b) open loop at R/2 = %s/s, %s s:  p99 checkout -> CONFIRMED = %s ms\n' "$HALF" "$DURATION" "$P99"
jq -r '"    started \(.started), confirmed \(.confirmed), cancelled \(.cancelled), failed \(.failed), unsettled \(.unsettled); completed \(.completed_per_s)/s; p50 \(.checkout_to_confirmed.p50_ms) ms, p90 \(.checkout_to_confirmed.p90_ms) ms, max \(.checkout_to_confirmed.max_ms) ms; HTTP answer p50 \(.checkout_answer.p50_ms) ms, p99 \(.checkout_answer.p99_ms) ms; driver lag p99 \(.driver_lag.p99_ms) ms"' "$RUN_DIR/open.json"
printf '    load average %s -> %s; CPU busy %s%%, other processes %s%% of a core\n' "$LOAD_B_BEFORE" "$LOAD_B_AFTER" \
  "$(jq -r .busy <<<"$CPU_B")" "$(jq -r .other <<<"$CPU_B")"
printf 'dead-lettered messages at the end: %s\n' "$dlq"

jq -n --arg ts "$STAMP" --arg rev "$git_rev" --arg rustc "$rustc_v" --arg pg "$pg_v" --arg rabbit "$rabbit_v" \
  --argjson cpus "$(nproc)" --argjson concurrency "$CONCURRENCY" --argjson duration "$DURATION" \
  --argjson r "$R" --argjson half "$HALF" --argjson p99 "$P99" --argjson dlq "$dlq" \
  --slurpfile closed "$RUN_DIR/closed.json" --slurpfile open "$RUN_DIR/open.json" \
  --argjson cpu_closed "$CPU_A" --argjson cpu_open "$CPU_B" \
  --arg la_a "$LOAD_A_BEFORE -> $LOAD_A_AFTER" --arg la_b "$LOAD_B_BEFORE -> $LOAD_B_AFTER" \
  '{timestamp: $ts, git: $rev, rustc: $rustc, postgres: $pg, rabbitmq: $rabbit, cpus: $cpus,
    completed_checkouts_per_s: $r, half_rate: $half, p99_checkout_to_confirmed_ms_at_half: $p99,
    dead_lettered: $dlq,
    closed: ($closed[0] + {cpu_percent: $cpu_closed, load_average: $la_a}),
    open: ($open[0] + {cpu_percent: $cpu_open, load_average: $la_b})}' >"$JSON_OUT"
log "wrote $JSON_OUT"

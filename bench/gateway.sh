#!/usr/bin/env bash
# Gateway benchmark (not a test): the same trivial upstream reached four ways,
# under the same wrk load, in one run:
#   direct      wrk -> upstream
#   nginx       wrk -> nginx (reverse proxy, keepalive upstream) -> upstream
#   floor       wrk -> the least proxy hyper can be (examples/floor.rs:
#               hyper's server and the gateway's upstream connections on the
#               gateway's threads, nothing else) -> upstream: where the
#               library alone lands against nginx
#   gateway     wrk -> feira gateway, public route -> upstream
#   gateway+jwt wrk -> feira gateway, route with JWT verification (EdDSA) and a
#               Redis rate limit high enough never to refuse -> upstream
# and prints requests/s and p99 for each, and the ratios. Those two send one
# user's token on every request; two more cases send the tokens of
# BENCH_USERS (1000) users in turn (bench/tokens.lua), so the rate-limit keys
# and denylist checks differ request by request:
#   gateway_users      the public route (tokens sent, not checked)
#   gateway_jwt_users  the JWT + rate-limit route
#
# Fairness: nginx runs `worker_processes auto` (one per core) with access_log
# off; the gateway runs tokio's default runtime (one worker thread per core)
# with RUST_LOG=warn (no per-request log lines). Everything (wrk included)
# shares this machine's cores, identically for every case.
#
# Usage: bash bench/gateway.sh
#   BENCH_DURATION=10 BENCH_THREADS=2 BENCH_CONNECTIONS=64 BENCH_WARMUP=2
#   BENCH_ROUNDS=3: every case runs once per round, rounds one after the
#   other; each ratio is computed per round and the median is printed (the
#   machine's noise moves whole rounds, so same-round ratios are steadier)
#   BENCH_BUILD=1 (0 skips `cargo build --release -p gateway --examples`)
# Needs Redis on 127.0.0.1:6379 (FEIRA_REDIS_URL) for the rate limit;
# installs wrk and nginx-light with apt-get when missing (as root).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${BENCH_DURATION:-10}
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-3}
USERS=${BENCH_USERS:-1000}
UP_PORT=19100 JWKS_PORT=19101 NGINX_PORT=19102 FLOOR_PORT=19103 GW_PORT=19180

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! { need nginx || [ -x /usr/sbin/nginx ]; }; then
    if [ "$(id -u)" -ne 0 ]; then echo "install wrk and nginx-light (or nginx) first" >&2; exit 1; fi
    apt-get update -qq
    need wrk || apt-get install -y -qq wrk >/dev/null
    { need nginx || [ -x /usr/sbin/nginx ]; } || apt-get install -y -qq nginx-light >/dev/null \
        || apt-get install -y -qq nginx >/dev/null
    # The package may start a system nginx on port 80; we do not need it.
    if command -v systemctl >/dev/null 2>&1; then systemctl stop nginx >/dev/null 2>&1 || true; fi
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ "${BENCH_BUILD:-1}" = 1 ]; then
    (cd "$ROOT" && cargo build --release -q -p gateway --examples)
fi
BIN="$ROOT/target/release/examples"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    exit 1
}

"$BIN/upstream" "127.0.0.1:$UP_PORT" & PIDS+=($!)
"$BIN/jwks" "127.0.0.1:$JWKS_PORT" "$USERS" >"$WORK/token" & PIDS+=($!)
wait_port "$UP_PORT"; wait_port "$JWKS_PORT"
for _ in $(seq 1 100); do [ "$(wc -l <"$WORK/token")" -ge "$USERS" ] && break; sleep 0.05; done
TOKEN=$(head -n1 "$WORK/token")
export BENCH_TOKENS="$WORK/token"

mkdir -p "$WORK/nginx"
sed -e "s|@PORT@|$NGINX_PORT|" -e "s|@UPSTREAM@|127.0.0.1:$UP_PORT|" -e "s|@PREFIX@|$WORK/nginx|g" \
    "$ROOT/bench/nginx-gateway.conf" >"$WORK/nginx/nginx.conf"
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" & PIDS+=($!)
wait_port "$NGINX_PORT"

"$BIN/floor" "127.0.0.1:$FLOOR_PORT" "127.0.0.1:$UP_PORT" & PIDS+=($!)
wait_port "$FLOOR_PORT"

cat >"$WORK/routes.toml" <<TOML
[rate_limits.bench]
rate = 10000000
per = "1s"
burst = 10000000

[[routes]]
name = "public"
prefix = "/public"
upstreams = ["http://127.0.0.1:$UP_PORT"]
auth = "public"

[[routes]]
name = "authed"
prefix = "/authed"
upstreams = ["http://127.0.0.1:$UP_PORT"]
auth = "required"
rate_limit = "bench"
TOML
RUST_LOG=warn FEIRA_LOG_FORMAT=json FEIRA_GATEWAY_PORT=$GW_PORT FEIRA_AMQP_NAMESPACE="bench$$" \
    FEIRA_GATEWAY_ROUTES="$WORK/routes.toml" FEIRA_GATEWAY_JWKS_URL="http://127.0.0.1:$JWKS_PORT/.well-known/jwks.json" \
    "$BIN/serve" 2>"$WORK/gateway.log" & PIDS+=($!)
wait_port "$GW_PORT"

status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$GW_PORT/authed/x")
[ "$status" = 200 ] || { echo "the authenticated route answered $status" >&2; cat "$WORK/gateway.log" >&2; exit 1; }

# wrk's latency in milliseconds.
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.3f", v}'; }

declare -A RPS P99
run() {
    local name=$1 url=$2; shift 2
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" "$@" "$url" >/dev/null
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@" "$url" >"$WORK/$name.txt"
    if grep -q "Non-2xx" "$WORK/$name.txt"; then echo "$name: non-2xx answers" >&2; cat "$WORK/$name.txt" >&2; exit 1; fi
    RPS[$name]=$(awk '/Requests\/sec/ {print $2}' "$WORK/$name.txt")
    P99[$name]=$(awk '$1 == "99%" {print $2}' "$WORK/$name.txt" | to_ms)
}

CASES=(direct nginx floor gateway gateway_jwt gateway_users gateway_jwt_users)
for r in $(seq 1 "$ROUNDS"); do
    run "direct.$r" "http://127.0.0.1:$UP_PORT/public/x"
    run "nginx.$r" "http://127.0.0.1:$NGINX_PORT/public/x"
    run "floor.$r" "http://127.0.0.1:$FLOOR_PORT/public/x"
    run "gateway.$r" "http://127.0.0.1:$GW_PORT/public/x"
    run "gateway_jwt.$r" "http://127.0.0.1:$GW_PORT/authed/x" -H "Authorization: Bearer $TOKEN"
    run "gateway_users.$r" "http://127.0.0.1:$GW_PORT/public/x" -s "$ROOT/bench/tokens.lua"
    run "gateway_jwt_users.$r" "http://127.0.0.1:$GW_PORT/authed/x" -s "$ROOT/bench/tokens.lua"
done

# One line per case and round: case round requests/s p99_ms.
for c in "${CASES[@]}"; do
    for r in $(seq 1 "$ROUNDS"); do echo "$c $r ${RPS[$c.$r]} ${P99[$c.$r]}"; done
done >"$WORK/results"

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s on $(nproc) cores, $ROUNDS rounds; trivial upstream answering 200 ok"
awk -v users="$USERS" -v rounds="$ROUNDS" '
function median(a, n,    i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function ratio(num, den,    r, a) {
    for (r = 1; r <= rounds; r++) a[r] = rps[num, r] / rps[den, r]
    return median(a, rounds)
}
function p99_added(c,    r, a) {
    for (r = 1; r <= rounds; r++) a[r] = p99[c, r] - p99["direct", r]
    return median(a, rounds)
}
{ rps[$1, $2] = $3; p99[$1, $2] = $4; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
END {
    printf "%-18s %14s %12s   (median of the rounds; each round in brackets)\n", "case", "requests/s", "p99 ms"
    for (i = 1; i <= n; i++) {
        c = order[i]; list = ""
        for (r = 1; r <= rounds; r++) { x[r] = rps[c, r]; y[r] = p99[c, r]; list = list sprintf(" %.0f", rps[c, r]) }
        printf "%-18s %14.0f %12.3f   [%s ]\n", c, median(x, rounds), median(y, rounds), list
    }
    printf "gateway / nginx throughput:           %.2f\n", ratio("gateway", "nginx")
    printf "hyper floor / nginx throughput:       %.2f\n", ratio("floor", "nginx")
    printf "gateway / hyper floor throughput:     %.2f\n", ratio("gateway", "floor")
    printf "gateway+jwt+ratelimit / gateway:      %.2f (one user)\n", ratio("gateway_jwt", "gateway")
    printf "gateway+jwt+ratelimit / gateway:      %.2f (%d users in turn)\n", ratio("gateway_jwt_users", "gateway_users"), users
    printf "added p99 over direct: nginx %.3f ms, hyper floor %.3f ms, gateway %.3f ms, gateway+jwt %.3f ms\n",
        p99_added("nginx"), p99_added("floor"), p99_added("gateway"), p99_added("gateway_jwt")
}' "$WORK/results"

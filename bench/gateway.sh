#!/usr/bin/env bash
# Gateway benchmark (not a test): the same trivial upstream reached four ways,
# under the same wrk load, in one run:
#   direct      wrk -> upstream
#   nginx       wrk -> nginx (reverse proxy, keepalive upstream) -> upstream
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
#   BENCH_BUILD=1 (0 skips `cargo build --release -p gateway --examples`)
# Needs Redis on 127.0.0.1:6379 (FEIRA_REDIS_URL) for the rate limit;
# installs wrk and nginx-light with apt-get when missing (as root).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${BENCH_DURATION:-10}
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
WARMUP=${BENCH_WARMUP:-2}
USERS=${BENCH_USERS:-1000}
UP_PORT=19100 JWKS_PORT=19101 NGINX_PORT=19102 GW_PORT=19180

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

run direct "http://127.0.0.1:$UP_PORT/public/x"
run nginx "http://127.0.0.1:$NGINX_PORT/public/x"
run gateway "http://127.0.0.1:$GW_PORT/public/x"
run gateway_jwt "http://127.0.0.1:$GW_PORT/authed/x" -H "Authorization: Bearer $TOKEN"
run gateway_users "http://127.0.0.1:$GW_PORT/public/x" -s "$ROOT/bench/tokens.lua"
run gateway_jwt_users "http://127.0.0.1:$GW_PORT/authed/x" -s "$ROOT/bench/tokens.lua"

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s on $(nproc) cores; trivial upstream answering 200 ok"
printf '%-18s %12s %10s\n' case "requests/s" "p99 ms"
for c in direct nginx gateway gateway_jwt gateway_users gateway_jwt_users; do
    printf '%-18s %12.0f %10.3f\n' "$c" "${RPS[$c]}" "${P99[$c]}"
done
awk -v g="${RPS[gateway]}" -v n="${RPS[nginx]}" -v j="${RPS[gateway_jwt]}" \
    -v gu="${RPS[gateway_users]}" -v ju="${RPS[gateway_jwt_users]}" -v users="$USERS" \
    -v pd="${P99[direct]}" -v pn="${P99[nginx]}" -v pg="${P99[gateway]}" -v pj="${P99[gateway_jwt]}" 'BEGIN {
    printf "gateway / nginx throughput:           %.2f\n", g / n
    printf "gateway+jwt+ratelimit / gateway:      %.2f (one user)\n", j / g
    printf "gateway+jwt+ratelimit / gateway:      %.2f (%d users in turn)\n", ju / gu, users
    printf "added p99 over direct: nginx %.3f ms, gateway %.3f ms, gateway+jwt %.3f ms\n", pn - pd, pg - pd, pj - pd
}'

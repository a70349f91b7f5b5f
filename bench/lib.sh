# shellcheck shell=bash
# What the benchmark scripts share: logging, the bench namespace's queues and
# Redis keys, CPU sampling with `top`, stopping feira. Sourced by
# bench/checkout.sh and bench/orders.sh, which set NAMESPACE, TOP_PID and
# FEIRA_PID before using these.

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Every queue of the bench namespace, with its ready + unacknowledged count.
bench_queues() {
  command -v rabbitmqctl >/dev/null 2>&1 || return 0
  rabbitmqctl -q list_queues --no-table-headers name messages 2>/dev/null |
    awk -v p="$NAMESPACE." 'index($1, p) == 1'
}

delete_queues() {
  local queue
  while read -r queue _; do
    [[ -n $queue ]] || continue
    # </dev/null: rabbitmqctl would otherwise eat the rest of the list from stdin.
    rabbitmqctl -q delete_queue "$queue" </dev/null >/dev/null 2>&1 || log "could not delete queue $queue"
  done < <(bench_queues)
}

delete_redis_keys() {
  command -v redis-cli >/dev/null 2>&1 || return 0
  redis-cli --scan --pattern "$NAMESPACE:*" 2>/dev/null | xargs -r -n 500 redis-cli del >/dev/null 2>&1 || true
}

start_top() { # start_top <log file>: samples every second until stop_top
  top -b -d 1 -w 512 >"$1" 2>&1 &
  TOP_PID=$!
}

stop_top() {
  if [[ -n $TOP_PID ]]; then
    kill "$TOP_PID" 2>/dev/null || true
    wait "$TOP_PID" 2>/dev/null || true
    TOP_PID=""
  fi
}

# Average CPU over a `top -b` log (first sample skipped) as JSON: "busy" is
# machine-wide (100 = every core), the others per command, 100 = one core;
# "other" is every process outside the benchmark (builds, tests...).
# A second argument names the benchmark's own load tools (`wrk|pgbench`),
# which do not count as "other".
top_summary() { # top_summary <top log> [tool|tool...]
  local ours='^(feira|postgres|beam\\.smp|erl_child_setup|epmd|inet_gethost|redis-server|top'
  ours+="${2:+|$2}"'|kworker.*|ksoftirqd.*|jbd2.*|kdamond.*|rcu_.*|migration.*)$'
  # -v processes escapes: `\\.` reaches awk as `\.`.
  awk -v ours="$ours" '
    /^top - / { n++; next }
    n < 2 { next }
    /^%Cpu\(s\):/ {
      for (i = 2; i <= NF; i++) if ($i ~ /^id,?$/) { idle += $(i - 1); samples++ }
      next
    }
    $1 ~ /^[0-9]+$/ && NF >= 12 {
      cpu[$12] += $9
      if ($12 !~ ours)
        other += $9
    }
    END {
      if (samples == 0) { print "busy 0"; print "other 0"; exit }
      printf "busy %.1f\nother %.1f\n", 100 - idle / samples, other / samples
      for (c in cpu) if (cpu[c] / samples >= 1) printf "%s %.1f\n", c, cpu[c] / samples
    }' "$1" |
    jq -Rn '[inputs | split(" ") | {(.[0]): (.[1] | tonumber)}] | add // {}'
}

stop_feira() {
  [[ -n $FEIRA_PID ]] || return 0
  if kill -0 "$FEIRA_PID" 2>/dev/null; then
    log "stopping feira (pid $FEIRA_PID)"
    kill -TERM "$FEIRA_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 300; i++)); do
      kill -0 "$FEIRA_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$FEIRA_PID" 2>/dev/null; then
      log "feira ignored SIGTERM for 30 s; killing it"
      kill -KILL "$FEIRA_PID" 2>/dev/null || true
    fi
  fi
  wait "$FEIRA_PID" 2>/dev/null || true
  FEIRA_PID=""
}

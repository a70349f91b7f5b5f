#!/usr/bin/env bash
# The test command: every test of the workspace against the real PostgreSQL,
# RabbitMQ and Redis on loopback (and a PostgreSQL hot standby it starts), then the OpenAPI documents through an external
# OpenAPI 3.1 validator.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-services.sh
# A hot standby of the local cluster on 127.0.0.1:5433 for the read-replica
# tests; removed afterwards so its replication slot does not hold WAL.
scripts/pg-replica.sh start >/dev/null
trap 'scripts/pg-replica.sh destroy >/dev/null 2>&1 || true' EXIT
# CI=true: the `ci` profile of .config/nextest.toml (a test that passes on a
# retry is reported FLAKY instead of failing the run).
profile=default
if [ -n "${CI:-}" ]; then profile=ci; fi
cargo nextest run --workspace --locked --no-fail-fast --profile "$profile" "$@"

if python3 -c 'import openapi_spec_validator' 2>/dev/null; then
  out=$(mktemp -d)
  for target in $(cargo run -q --locked -p feira -- targets | awk '{print $1}'); do
    cargo run -q --locked -p feira -- openapi "$target" > "$out/$target.json"
    python3 -m openapi_spec_validator "$out/$target.json"
  done
  rm -rf "$out"
else
  echo "openapi-spec-validator not installed (pip install openapi-spec-validator): OpenAPI documents not validated" >&2
fi

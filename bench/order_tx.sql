-- pgbench script for bench/orders.sh: the transaction POST /orders runs
-- (services/orders/src/app/mod.rs, repo/mod.rs, platform outbox::enqueue),
-- statement for statement and round trip for round trip:
--   BEGIN; INSERT orders; INSERT order_lines (UNNEST); INSERT outbox; COMMIT
-- Run with -M prepared (sqlx prepares its statements too). Differences from
-- the service, on purpose or unavoidable: ids are gen_random_uuid() (v4,
-- random) where the service uses UUIDv7 (time-ordered), and the envelope is
-- built by jsonb_build_object in SQL instead of by serde in the service.
\set customer random(1, 1000)
\set sku1 random(1, 10000)
\set sku2 random(1, 10000)
\set q1 random(1, 5)
\set q2 random(1, 5)
\set p1 random(100, 10000)
\set p2 random(100, 10000)
\set lt1 :q1 * :p1
\set lt2 :q2 * :p2
\set total :lt1 + :lt2
BEGIN;
INSERT INTO orders (id, customer_id, status, currency, total_cents, idempotency_key, created_at, updated_at)
    VALUES (gen_random_uuid(), ('00000000-0000-4000-8000-' || lpad(:customer::text, 12, '0'))::uuid,
            'PENDING', 'BRL', :total::bigint, NULL, now(), now())
    ON CONFLICT (customer_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id AS order_id, customer_id AS customer_uuid
\gset
INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_cents)
    SELECT :order_id::uuid, * FROM UNNEST(ARRAY[1, 2]::int[],
                                          ARRAY['SKU-' || :sku1::text, 'SKU-' || :sku2::text]::text[],
                                          ARRAY[:q1::int, :q2::int]::int[],
                                          ARRAY[:p1::bigint, :p2::bigint]::bigint[]);
INSERT INTO outbox (message_id, exchange, routing_key, message_type, envelope, traceparent)
    SELECT m.id, 'events', 'orders.order_placed.v1', 'orders.order_placed',
           jsonb_build_object(
               'message_id', m.id, 'type', 'orders.order_placed', 'version', 1,
               'occurred_at', now(), 'correlation_id', m.id, 'traceparent', m.tp,
               'payload', jsonb_build_object(
                   'order_id', :order_id::uuid, 'customer_id', :customer_uuid::uuid,
                   'currency', 'BRL', 'total_cents', :total::bigint, 'placed_at', now(),
                   'lines', jsonb_build_array(
                       jsonb_build_object('sku', 'SKU-' || :sku1::text, 'quantity', :q1::int,
                                          'unit_price_cents', :p1::bigint, 'line_total_cents', :lt1::bigint),
                       jsonb_build_object('sku', 'SKU-' || :sku2::text, 'quantity', :q2::int,
                                          'unit_price_cents', :p2::bigint, 'line_total_cents', :lt2::bigint)))),
           m.tp
      FROM (SELECT gen_random_uuid() AS id,
                   '00-' || replace(gen_random_uuid()::text, '-', '') || '-'
                         || left(replace(gen_random_uuid()::text, '-', ''), 16) || '-01' AS tp) AS m;
COMMIT;

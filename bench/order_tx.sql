-- pgbench script for bench/orders.sh: the transaction POST /orders runs
-- (services/orders/src/app/orders.rs place_order, repo/mod.rs insert_order
-- and append_timeline, platform messaging/outbox.rs enqueue), statement for
-- statement and round trip for round trip:
--   BEGIN;
--   INSERT orders (PENDING, freight, contact e-mail, shipping and payment
--                  JSONB, saga_step 'reserving_stock', step_deadline now + 30 s,
--                  correlation_id = the OrderPlacedV1 message id);
--   INSERT order_lines (UNNEST of 6 arrays, with product_id);
--   INSERT outbox OrderPlacedV1 (orders.order_placed.v1);
--   INSERT outbox ReserveStockV1 (catalog.reserve_stock.v1, caused by the
--                                 OrderPlacedV1, same correlation);
--   INSERT order_timeline (UNNEST WITH ORDINALITY: placed/PENDING,
--                          reserve_stock/requested);
--   COMMIT
-- Run with -M prepared (sqlx prepares its statements too). Differences from
-- the service, on purpose or unavoidable: ids are gen_random_uuid() (v4,
-- random) where the service uses UUIDv7 (time-ordered); the envelopes and the
-- JSONB columns are built by jsonb_build_object in SQL instead of by serde in
-- the service; the INSERT orders returns the ids pgbench needs for the later
-- statements (RETURNING ... \gset: same round trip, the service checks the
-- affected row count instead); the two lines always have their own
-- ReserveStockV1 line (the service adds up lines of the same product, 1 in
-- 10 000 here); the traceparents share a trace id per transaction with
-- random span ids, as the service's spans give them.
\set customer random(1, 1000)
\set prod1 random(1, 10000)
\set prod2 random(1, 10000)
\set sku1 random(1, 10000)
\set sku2 random(1, 10000)
\set q1 random(1, 5)
\set q2 random(1, 5)
\set p1 random(100, 10000)
\set p2 random(100, 10000)
\set freight random(500, 3000)
\set lt1 :q1 * :p1
\set lt2 :q2 * :p2
\set total :lt1 + :lt2 + :freight
BEGIN;
INSERT INTO orders (id, customer_id, status, currency, total_cents, idempotency_key, created_at, updated_at,
                    freight_cents, contact_email, shipping, payment_method, saga_step, step_deadline,
                    correlation_id)
    SELECT n.id, ('00000000-0000-4000-8000-' || lpad(:customer::text, 12, '0'))::uuid,
           'PENDING', 'BRL', :total::bigint, NULL, now(), now(),
           :freight::bigint, 'cliente' || :customer::text || '@example.com',
           jsonb_build_object(
               'quote_id', n.quote_id, 'freight_cents', :freight::bigint,
               'address', jsonb_build_object(
                   'recipient', 'Cliente ' || :customer::text, 'street', 'Avenida Paulista', 'number', '1000',
                   'complement', NULL, 'district', 'Bela Vista', 'city', 'Sao Paulo', 'state', 'SP',
                   'cep', '01310100')),
           jsonb_build_object('type', 'card', 'token', 'tok_visa'),
           'reserving_stock', now() + interval '30 seconds', n.placed_id
      FROM (SELECT gen_random_uuid() AS id, gen_random_uuid() AS placed_id, gen_random_uuid() AS quote_id) AS n
    ON CONFLICT (customer_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id AS order_id, customer_id AS customer_uuid, correlation_id AS placed_id,
              shipping ->> 'quote_id' AS quote_id, replace(gen_random_uuid()::text, '-', '') AS trace_id
\gset
INSERT INTO order_lines (order_id, line_no, product_id, sku, quantity, unit_price_cents)
    SELECT :order_id::uuid, * FROM UNNEST(ARRAY[1, 2]::int[],
                                          ARRAY[('00000000-0000-4000-9000-' || lpad(:prod1::text, 12, '0'))::uuid,
                                                ('00000000-0000-4000-9000-' || lpad(:prod2::text, 12, '0'))::uuid]::uuid[],
                                          ARRAY['SKU-' || :sku1::text, 'SKU-' || :sku2::text]::text[],
                                          ARRAY[:q1::int, :q2::int]::int[],
                                          ARRAY[:p1::bigint, :p2::bigint]::bigint[]);
INSERT INTO outbox (message_id, exchange, routing_key, message_type, envelope, traceparent)
    SELECT :placed_id::uuid, 'events', 'orders.order_placed.v1', 'orders.order_placed',
           jsonb_build_object(
               'message_id', :placed_id::uuid, 'type', 'orders.order_placed', 'version', 1,
               'occurred_at', now(), 'correlation_id', :placed_id::uuid, 'traceparent', m.tp,
               'payload', jsonb_build_object(
                   'order_id', :order_id::uuid, 'customer_id', :customer_uuid::uuid,
                   'currency', 'BRL', 'total_cents', :total::bigint, 'placed_at', now(),
                   'lines', jsonb_build_array(
                       jsonb_build_object('product_id', ('00000000-0000-4000-9000-' || lpad(:prod1::text, 12, '0'))::uuid,
                                          'sku', 'SKU-' || :sku1::text, 'quantity', :q1::int,
                                          'unit_price_cents', :p1::bigint, 'line_total_cents', :lt1::bigint),
                       jsonb_build_object('product_id', ('00000000-0000-4000-9000-' || lpad(:prod2::text, 12, '0'))::uuid,
                                          'sku', 'SKU-' || :sku2::text, 'quantity', :q2::int,
                                          'unit_price_cents', :p2::bigint, 'line_total_cents', :lt2::bigint)),
                   'contact_email', 'cliente' || :customer::text || '@example.com',
                   'shipping', jsonb_build_object(
                       'quote_id', :quote_id::uuid, 'freight_cents', :freight::bigint,
                       'address', jsonb_build_object(
                           'recipient', 'Cliente ' || :customer::text, 'street', 'Avenida Paulista',
                           'number', '1000', 'district', 'Bela Vista', 'city', 'Sao Paulo', 'state', 'SP',
                           'cep', '01310100')))),
           m.tp
      FROM (SELECT '00-' || :trace_id::text || '-'
                         || left(replace(gen_random_uuid()::text, '-', ''), 16) || '-01' AS tp) AS m;
INSERT INTO outbox (message_id, exchange, routing_key, message_type, envelope, traceparent)
    SELECT m.id, 'events', 'catalog.reserve_stock.v1', 'catalog.reserve_stock',
           jsonb_build_object(
               'message_id', m.id, 'type', 'catalog.reserve_stock', 'version', 1,
               'occurred_at', now(), 'correlation_id', :placed_id::uuid, 'causation_id', :placed_id::uuid,
               'traceparent', m.tp,
               'payload', jsonb_build_object(
                   'order_id', :order_id::uuid,
                   'lines', jsonb_build_array(
                       jsonb_build_object('product_id', ('00000000-0000-4000-9000-' || lpad(:prod1::text, 12, '0'))::uuid,
                                          'quantity', :q1::bigint),
                       jsonb_build_object('product_id', ('00000000-0000-4000-9000-' || lpad(:prod2::text, 12, '0'))::uuid,
                                          'quantity', :q2::bigint)))),
           m.tp
      FROM (SELECT gen_random_uuid() AS id,
                   '00-' || :trace_id::text || '-'
                         || left(replace(gen_random_uuid()::text, '-', ''), 16) || '-01' AS tp) AS m;
INSERT INTO order_timeline (order_id, step, outcome, at)
    SELECT :order_id::uuid, s, o, now()
      FROM UNNEST(ARRAY['placed', 'reserve_stock']::text[], ARRAY['PENDING', 'requested']::text[])
           WITH ORDINALITY AS t(s, o, n)
     ORDER BY n;
COMMIT;

-- wrk script for bench/orders.sh: POST /orders with valid orders, as the
-- cart's checkout places them.
--
-- Each wrk thread pre-builds BENCH_LUA_POOL distinct requests at start-up
-- (so the load generator spends no CPU on formatting during the run) and
-- sends a random one each time. Every request is a 2-line BRL order for one
-- of BENCH_CUSTOMERS customers, with a shipping quote and address, a card
-- token and a contact e-mail. Headers are those the gateway and the cart set:
-- x-feira-user-id (= the body's customer_id), x-feira-roles: customer and
-- x-feira-channel: cart (without it a customer's order answers 403).
--
-- The product ids are not in the catalog, so each order's saga ends
-- CANCELLED (out_of_stock) after the request; only POST /orders is measured.
-- Customer and product ids use the same formulas as bench/order_tx.sql, so
-- both benchmarks touch the same key space.

local customers = tonumber(os.getenv("BENCH_CUSTOMERS") or "1000")
local pool_size = tonumber(os.getenv("BENCH_LUA_POOL") or "2000")
local requests = {}
local threads = 0

-- Runs in the main Lua state, once per thread: gives each thread its own
-- number (the global `thread_id` of that thread's state) to seed its RNG.
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local function customer_id(n)
  return string.format("00000000-0000-4000-8000-%012d", n)
end

local function product_id(n)
  return string.format("00000000-0000-4000-9000-%012d", n)
end

-- A random version 4 UUID (the shipping quote's id).
local function uuid4()
  return string.format("%08x-%04x-4%03x-%04x-%04x%08x",
    math.random(0, 0x7fffffff), math.random(0, 0xffff), math.random(0, 0xfff),
    0x8000 + math.random(0, 0x3fff), math.random(0, 0xffff), math.random(0, 0x7fffffff))
end

function init(args)
  math.randomseed(os.time() * 100 + (tonumber(thread_id) or 0))
  for i = 1, pool_size do
    local n = math.random(1, customers)
    local customer = customer_id(n)
    local body = string.format(
      '{"customer_id":"%s","currency":"BRL","items":['
        .. '{"product_id":"%s","sku":"SKU-%d","quantity":%d,"unit_price_cents":%d},'
        .. '{"product_id":"%s","sku":"SKU-%d","quantity":%d,"unit_price_cents":%d}],'
        .. '"shipping":{"quote_id":"%s","freight_cents":%d,"address":{'
        .. '"recipient":"Cliente %d","street":"Avenida Paulista","number":"1000",'
        .. '"district":"Bela Vista","city":"Sao Paulo","state":"SP","cep":"01310100"}},'
        .. '"payment":{"type":"card","token":"tok_visa"},'
        .. '"contact_email":"cliente%d@example.com"}',
      customer,
      product_id(math.random(1, 10000)), math.random(1, 10000), math.random(1, 5), math.random(100, 10000),
      product_id(math.random(1, 10000)), math.random(1, 10000), math.random(1, 5), math.random(100, 10000),
      uuid4(), math.random(500, 3000), n, n)
    requests[i] = wrk.format("POST", "/orders", {
      ["content-type"] = "application/json",
      ["x-feira-user-id"] = customer,
      ["x-feira-roles"] = "customer",
      ["x-feira-channel"] = "cart",
    }, body)
  end
end

function request()
  return requests[math.random(1, pool_size)]
end

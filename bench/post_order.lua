-- wrk script for bench/orders.sh: POST /orders with valid orders.
--
-- Each wrk thread pre-builds BENCH_LUA_POOL distinct requests at start-up
-- (so the load generator spends no CPU on formatting during the run) and
-- sends a random one each time. Every request is a 2-line BRL order for one
-- of BENCH_CUSTOMERS customers; the body's customer_id equals the
-- x-feira-user-id header, as the gateway would set it. The customer ids use
-- the same formula as bench/order_tx.sql, so both benchmarks touch the same
-- key space.

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

function init(args)
  math.randomseed(os.time() * 100 + (tonumber(thread_id) or 0))
  for i = 1, pool_size do
    local customer = customer_id(math.random(1, customers))
    local body = string.format(
      '{"customer_id":"%s","currency":"BRL","items":['
        .. '{"sku":"SKU-%d","quantity":%d,"unit_price_cents":%d},'
        .. '{"sku":"SKU-%d","quantity":%d,"unit_price_cents":%d}]}',
      customer,
      math.random(1, 10000), math.random(1, 5), math.random(100, 10000),
      math.random(1, 10000), math.random(1, 5), math.random(100, 10000))
    requests[i] = wrk.format("POST", "/orders", {
      ["content-type"] = "application/json",
      ["x-feira-user-id"] = customer,
      ["x-feira-roles"] = "customer",
    }, body)
  end
end

function request()
  return requests[math.random(1, pool_size)]
end

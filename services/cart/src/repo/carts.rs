//! Carts in Redis: one hash per customer, `<namespace>:cart:<user_id>`.
//!
//! Fields: `qty:<product_id>` → the quantity, `item:<product_id>` → the
//! last seen [`Snapshot`] (JSON), and `currency` → the cart's one currency
//! while it has lines. Every change is one Lua script (atomic in Redis), so
//! concurrent changes never lose one another, and sets the key's expiry to
//! the idle TTL again; removing the last line deletes the key.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use uuid::Uuid;

use crate::domain::{Cart, CartLine, MAX_LINES, Quantity, Snapshot};

/// A Redis round trip longer than this fails (the service answers 503).
const TIMEOUT: Duration = Duration::from_secs(2);

/// Sets one line if the cart's currency allows it and there is room.
/// KEYS[1] cart; ARGV: product id, quantity, snapshot JSON, currency, ttl ms, max lines.
/// Returns {"ok", ""}, {"currency", <the cart's currency>} or {"full", <lines>}.
const SET_LINE: &str = r#"
local key = KEYS[1]
local qty_field = 'qty:' .. ARGV[1]
local present = redis.call('HEXISTS', key, qty_field)
local lines = math.floor(redis.call('HLEN', key) / 2)
local current = redis.call('HGET', key, 'currency')
if current and current ~= ARGV[4] and not (present == 1 and lines == 1) then
  return {'currency', current}
end
if present == 0 and lines >= tonumber(ARGV[6]) then
  return {'full', tostring(lines)}
end
redis.call('HSET', key, qty_field, ARGV[2], 'item:' .. ARGV[1], ARGV[3], 'currency', ARGV[4])
redis.call('PEXPIRE', key, ARGV[5])
return {'ok', ''}
"#;

/// Removes one line; the last one takes the cart with it.
/// KEYS[1] cart; ARGV: product id, ttl ms. Returns the fields removed.
const REMOVE_LINE: &str = r#"
local key = KEYS[1]
local removed = redis.call('HDEL', key, 'qty:' .. ARGV[1], 'item:' .. ARGV[1])
if redis.call('HLEN', key) <= 1 then
  redis.call('DEL', key)
elseif removed > 0 then
  redis.call('PEXPIRE', key, ARGV[2])
end
return removed
"#;

/// Remembers newer prices for lines still in the cart (a price seen is not a
/// change by the customer: the expiry is left alone).
/// KEYS[1] cart; ARGV: product id, snapshot JSON, product id, snapshot JSON, ...
const REMEMBER_PRICES: &str = r#"
local key = KEYS[1]
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HEXISTS', key, 'qty:' .. ARGV[i]) == 1 then
    redis.call('HSET', key, 'item:' .. ARGV[i], ARGV[i + 1])
    n = n + 1
  end
end
return n
"#;

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetOutcome {
    Done,
    /// The cart holds lines in this other currency.
    OtherCurrency(String),
    /// The cart already holds [`MAX_LINES`] products.
    Full,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("stored cart data does not decode: {0}")]
    Decode(#[from] serde_json::Error),
}

/// The prefix of every key the cart service writes.
pub fn prefix(namespace: &str) -> String {
    format!("{namespace}:cart:")
}

/// Carts in Redis; clones share one multiplexed, reconnecting connection.
#[derive(Clone)]
pub struct CartStore {
    manager: ConnectionManager,
    prefix: String,
    ttl: Duration,
}

impl CartStore {
    /// Opens nothing yet: the connection is made on first use.
    pub fn new(redis_url: &str, namespace: &str, ttl: Duration) -> anyhow::Result<Self> {
        let client = redis::Client::open(redis_url)?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        let manager = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(CartStore { manager, prefix: prefix(namespace), ttl })
    }

    /// The Redis key of a customer's cart.
    pub fn key(&self, customer: Uuid) -> String {
        format!("{}{customer}", self.prefix)
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis().max(1) as u64
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut con = self.manager.clone();
        match tokio::time::timeout(TIMEOUT, cmd.query_async::<T>(&mut con)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(StoreError::Timeout(TIMEOUT)),
        }
    }

    /// The customer's cart (empty when there is none).
    #[tracing::instrument(skip_all, fields(%customer))]
    pub async fn load(&self, customer: Uuid) -> Result<Cart, StoreError> {
        let fields: HashMap<String, String> = self.run(redis::cmd("HGETALL").arg(self.key(customer))).await?;
        let mut lines = Vec::new();
        for (field, value) in &fields {
            let Some(id) = field.strip_prefix("qty:") else { continue };
            let (Ok(product_id), Ok(n)) = (Uuid::parse_str(id), value.parse::<i64>()) else {
                tracing::warn!(field, "ignoring a cart field that does not parse");
                continue;
            };
            let (Ok(quantity), Some(item)) = (Quantity::parse(n), fields.get(&format!("item:{id}"))) else {
                tracing::warn!(field, "ignoring a cart line without a valid quantity or snapshot");
                continue;
            };
            let snapshot: Snapshot = serde_json::from_str(item)?;
            lines.push(CartLine { product_id, quantity, snapshot });
        }
        Ok(Cart::new(lines))
    }

    /// Sets a product's quantity (adding it when absent) with its snapshot.
    #[tracing::instrument(skip_all, fields(%customer, %product_id))]
    pub async fn set_line(
        &self,
        customer: Uuid,
        product_id: Uuid,
        quantity: Quantity,
        snapshot: &Snapshot,
    ) -> Result<SetOutcome, StoreError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SET_LINE)
            .arg(1)
            .arg(self.key(customer))
            .arg(product_id.to_string())
            .arg(quantity.get())
            .arg(serde_json::to_string(snapshot)?)
            .arg(snapshot.currency.code())
            .arg(self.ttl_ms())
            .arg(MAX_LINES);
        let (verdict, detail): (String, String) = self.run(&cmd).await?;
        Ok(match verdict.as_str() {
            "currency" => SetOutcome::OtherCurrency(detail),
            "full" => SetOutcome::Full,
            _ => SetOutcome::Done,
        })
    }

    /// Removes a product; true when it was in the cart.
    #[tracing::instrument(skip_all, fields(%customer, %product_id))]
    pub async fn remove_line(&self, customer: Uuid, product_id: Uuid) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(REMOVE_LINE).arg(1).arg(self.key(customer)).arg(product_id.to_string()).arg(self.ttl_ms());
        let removed: i64 = self.run(&cmd).await?;
        Ok(removed > 0)
    }

    /// Deletes the whole cart.
    #[tracing::instrument(skip_all, fields(%customer))]
    pub async fn clear(&self, customer: Uuid) -> Result<(), StoreError> {
        self.run::<i64>(redis::cmd("DEL").arg(self.key(customer))).await?;
        Ok(())
    }

    /// Remembers the latest prices seen for lines still in the cart.
    #[tracing::instrument(skip_all, fields(%customer, lines = snapshots.len()))]
    pub async fn remember_prices(&self, customer: Uuid, snapshots: &[(Uuid, Snapshot)]) -> Result<(), StoreError> {
        if snapshots.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(REMEMBER_PRICES).arg(1).arg(self.key(customer));
        for (id, snapshot) in snapshots {
            cmd.arg(id.to_string()).arg(serde_json::to_string(snapshot)?);
        }
        self.run::<i64>(&cmd).await?;
        Ok(())
    }
}

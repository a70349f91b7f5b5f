//! The message catalog as an AsyncAPI 3.0 document, generated from the types.

use serde_json::{Value, json};

use crate::catalog;

/// A consumer queue and the routing keys it is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Subscriber<'a> {
    pub service: &'a str,
    pub queue: &'a str,
    pub bindings: &'a [&'a str],
}

/// AsyncAPI 3.0: one channel per routing key on the topic exchange
/// `<namespace>.events`, the publisher's `send` and each subscriber's
/// `receive` operations, and every payload's JSON schema inside the envelope.
pub fn asyncapi(namespace: &str, subscribers: &[Subscriber<'_>]) -> Value {
    let exchange = format!("{namespace}.events");
    let mut channels = serde_json::Map::new();
    let mut operations = serde_json::Map::new();
    let mut messages = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    schemas.insert("Envelope".into(), envelope_schema());
    for e in catalog() {
        let message = e.payload.clone();
        let channel = e.routing_key.replace('.', "_");
        for (name, schema) in (e.schemas)() {
            schemas.insert(name, serde_json::to_value(schema).unwrap_or(Value::Null));
        }
        messages.insert(
            message.clone(),
            json!({
                "name": e.message_type,
                "title": format!("{} v{}", e.message_type, e.version),
                "contentType": "application/json",
                "headers": {
                    "type": "object",
                    "properties": {
                        "traceparent": {"type": "string", "description": "W3C trace context"},
                        "x-feira-attempt": {"type": "integer", "minimum": 1}
                    }
                },
                "payload": {"allOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {"type": "object", "properties": {"payload": {"$ref": format!("#/components/schemas/{message}")}}}
                ]},
                "bindings": {"amqp": {"messageType": e.message_type, "bindingVersion": "0.3.0"}}
            }),
        );
        channels.insert(
            channel.clone(),
            json!({
                "address": e.routing_key,
                "messages": {message.clone(): {"$ref": format!("#/components/messages/{message}")}},
                "bindings": {"amqp": {"is": "routingKey", "exchange": {"name": exchange, "type": "topic", "durable": true, "autoDelete": false}, "bindingVersion": "0.3.0"}}
            }),
        );
        operations.insert(
            format!("{}_sends_{channel}", e.publisher),
            json!({
                "action": "send",
                "summary": format!("{} publishes {} through its outbox", e.publisher, e.message_type),
                "channel": {"$ref": format!("#/channels/{channel}")},
                "bindings": {"amqp": {"deliveryMode": 2, "mandatory": false, "bindingVersion": "0.3.0"}}
            }),
        );
        for s in subscribers.iter().filter(|s| s.bindings.contains(&e.routing_key)) {
            operations.insert(
                format!("{}_receives_{channel}", s.queue.replace('.', "_")),
                json!({
                    "action": "receive",
                    "summary": format!("{} consumes it from queue {namespace}.{}", s.service, s.queue),
                    "channel": {"$ref": format!("#/channels/{channel}")}
                }),
            );
        }
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "feira messages",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every event and command that crosses feira's services, wrapped in the envelope."
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas}
    })
}

fn envelope_schema() -> Value {
    json!({
        "type": "object",
        "required": ["message_id", "type", "version", "occurred_at", "correlation_id", "payload"],
        "properties": {
            "message_id": {"type": "string", "format": "uuid", "description": "UUIDv7; consumers deduplicate on it"},
            "type": {"type": "string"},
            "version": {"type": "integer", "minimum": 1},
            "occurred_at": {"type": "string", "format": "date-time"},
            "correlation_id": {"type": "string", "format": "uuid"},
            "causation_id": {"type": "string", "format": "uuid"},
            "traceparent": {"type": "string"},
            "payload": {}
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_message_has_a_channel_a_sender_and_its_schemas() {
        let subs =
            [Subscriber { service: "invoices", queue: "invoices.order_placed", bindings: &["orders.order_placed.v1"] }];
        let doc = asyncapi("feira", &subs);
        assert_eq!(doc["asyncapi"], "3.0.0");
        for e in catalog() {
            let channel = e.routing_key.replace('.', "_");
            assert_eq!(doc["channels"][&channel]["address"], e.routing_key);
            assert!(doc["operations"][format!("{}_sends_{channel}", e.publisher)].is_object());
            assert!(doc["components"]["schemas"][&e.payload]["properties"].is_object(), "{}", e.payload);
        }
        assert!(doc["components"]["schemas"]["OrderLineV1"].is_object(), "nested schemas are included");
        assert_eq!(doc["operations"]["invoices_order_placed_receives_orders_order_placed_v1"]["action"], "receive");
    }
}

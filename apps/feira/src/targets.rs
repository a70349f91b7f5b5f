//! Every deployable target. Adding a service = one line here.

use platform::service::ServiceSpec;

/// All services, in start order: the outside parties' simulators first,
/// the gateway last.
pub const TARGETS: &[ServiceSpec] = &[
    psp_sim::SPEC,
    carrier_sim::SPEC,
    identity::SPEC,
    catalog::SPEC,
    catalog_publisher::SPEC,
    shipping::SPEC,
    cart::SPEC,
    orders::SPEC,
    payments::SPEC,
    invoices::SPEC,
    notifications::SPEC,
    gateway::SPEC,
];

pub fn find(name: &str) -> Option<&'static ServiceSpec> {
    TARGETS.iter().find(|t| t.name == name)
}

/// `(name, default port)` of every target, for configuration.
pub fn ports() -> Vec<(&'static str, u16)> {
    TARGETS.iter().map(|t| (t.name, t.default_port)).collect()
}

/// Every service-specific variable of every target.
pub fn vars() -> Vec<platform::config::Var> {
    TARGETS.iter().flat_map(|t| t.vars.iter().copied()).collect()
}

/// Every consumer of every target (for `feira dlq`).
pub fn consumers() -> Vec<platform::messaging::ConsumerSpec> {
    TARGETS.iter().flat_map(|t| t.consumers.iter().copied()).collect()
}

//! Logs, traces and the W3C trace context.
//!
//! [`init`] installs one subscriber for the process: JSON lines (or a pretty
//! format on a terminal) where every line carries the `trace_id` and `span_id`
//! of the span it was written in, and an OpenTelemetry layer that exports
//! spans over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. The
//! returned guard flushes the exporter when dropped.
//!
//! [`current_traceparent`] and [`set_parent`] carry the context across HTTP
//! and AMQP: the outbox stores the `traceparent` of the transaction that wrote
//! the row, the relay puts it in the message headers, and the consumer makes
//! it the parent of its handling span.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::OnceLock;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// Flushes and shuts the trace exporter down when dropped.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(e) = self.provider.force_flush() {
            eprintln!("telemetry flush failed: {e}");
        }
        let _ = self.provider.shutdown();
    }
}

static INSTALLED: OnceLock<()> = OnceLock::new();

/// Installs logging and tracing for the process. Call once, first thing.
pub fn init(service_name: &str, format: LogFormat) -> anyhow::Result<TelemetryGuard> {
    let mut builder = SdkTracerProvider::builder().with_resource(resource(service_name));
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    install(builder.build(), format)
}

/// Installs telemetry that hands every finished span to `exporter` as soon
/// as it ends (tests pass an `InMemorySpanExporter`).
pub fn init_with_exporter<E: SpanExporter + 'static>(
    service_name: &str,
    exporter: E,
) -> anyhow::Result<TelemetryGuard> {
    let provider =
        SdkTracerProvider::builder().with_resource(resource(service_name)).with_simple_exporter(exporter).build();
    install(provider, LogFormat::Json)
}

fn resource(service_name: &str) -> opentelemetry_sdk::Resource {
    let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service_name.to_string());
    opentelemetry_sdk::Resource::builder().with_service_name(name).build()
}

fn install(provider: SdkTracerProvider, format: LogFormat) -> anyhow::Result<TelemetryGuard> {
    if INSTALLED.set(()).is_err() {
        anyhow::bail!("telemetry is already installed in this process");
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    let tracer = provider.tracer("feira");
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lapin=warn,amq_protocol=warn"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let fmt_layer = if json {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .fmt_fields(JsonFields::new())
            .event_format(JsonWithTrace)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).compact().boxed()
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .with(fmt_layer)
        .try_init()?;
    Ok(TelemetryGuard { provider })
}

/// The `traceparent` of the current span, if it is being traced.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes the remote context in `traceparent` the parent of `span`.
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(tp) = traceparent else { return };
    let mut carrier = HashMap::new();
    carrier.insert("traceparent".to_string(), tp.to_string());
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// JSON lines in the shape log pipelines expect, with the OpenTelemetry
/// trace and span ids of the current span on every line.
struct JsonWithTrace;

impl<S, N> FormatEvent<S, N> for JsonWithTrace
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let mut line = serde_json::Map::new();
        let now =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        line.insert("timestamp".into(), now.into());
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert("target".into(), event.metadata().target().into());
        let mut fields = serde_json::Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        if let Some(msg) = fields.remove("message") {
            line.insert("message".into(), msg);
        }
        if !fields.is_empty() {
            line.insert("fields".into(), fields.into());
        }
        if let Some(span) = ctx.lookup_current() {
            line.insert("span".into(), span.name().into());
            let mut spans = Vec::new();
            for s in span.scope().from_root() {
                let mut obj = serde_json::Map::new();
                obj.insert("name".into(), s.name().into());
                if let Some(f) = s.extensions().get::<FormattedFields<N>>()
                    && let Ok(serde_json::Value::Object(m)) = serde_json::from_str(f.as_str())
                {
                    obj.extend(m);
                }
                spans.push(serde_json::Value::Object(obj));
            }
            line.insert("spans".into(), spans.into());
            let id = span.id();
            let cx = tracing::dispatcher::get_default(|d| tracing_opentelemetry::get_otel_context(&id, d));
            if let Some(cx) = cx {
                let sc = cx.span().span_context().clone();
                if sc.is_valid() {
                    line.insert("trace_id".into(), sc.trace_id().to_string().into());
                    line.insert("span_id".into(), sc.span_id().to_string().into());
                }
            }
        }
        let text = serde_json::to_string(&line).map_err(|_| std::fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

struct JsonVisitor<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
}

//! Logs and spans. Logs: readable text by default, one JSON object a line with `LOG_FORMAT=json`.
//! Spans: the `tracing` spans of the command path (the command span of `crate::trace` and any
//! span opened inside it) go to OpenTelemetry through `tracing-opentelemetry`, once
//! `trace::SpanExporter::start` installed a tracer; until then, and without `TRACE_ENDPOINT`,
//! that layer sees nothing and costs nothing.

use std::any::TypeId;
use std::sync::OnceLock;

use clap::ValueEnum;
use opentelemetry_sdk::trace::SdkTracer;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata};
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::filter::{Filtered, LevelFilter};
use tracing_subscriber::layer::{Context, Filter, Layer, Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Registry;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The target of the command span: it is exported, not logged (the log lines carry its ids).
pub(crate) const COMMAND_SPAN_TARGET: &str = "atlas_drops::command";

/// The most verbose spans and events exported: span events are the command span's log lines.
const EXPORTED_LEVEL: LevelFilter = LevelFilter::INFO;

type OtelLayer = OpenTelemetryLayer<Registry, SdkTracer>;

/// The OpenTelemetry layer, once a tracer is installed.
static OTEL: OnceLock<OtelLayer> = OnceLock::new();

pub fn init(level: LevelFilter, format: LogFormat) {
    let logs = tracing_subscriber::fmt::layer().with_ansi(false);
    match format {
        LogFormat::Text => subscriber().with(logs.with_filter(Logged(level))).init(),
        LogFormat::Json => subscriber()
            .with(logs.json().with_filter(Logged(level)))
            .init(),
    }
}

/// The subscriber without logs: what the OpenTelemetry layer sees.
pub(crate) fn subscriber() -> Layered<Filtered<Installed, Exported, Registry>, Registry> {
    tracing_subscriber::registry().with(Installed.with_filter(Exported))
}

/// Hands the spans to `tracer` from now on; `false` when a tracer was installed already.
pub(crate) fn install_tracer(tracer: SdkTracer) -> bool {
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_context_activation(false);
    let installed = OTEL.set(layer).is_ok();
    // The filters' answers for each call site were cached: ask them again.
    tracing::callsite::rebuild_interest_cache();
    installed
}

fn exporting() -> bool {
    OTEL.get().is_some()
}

/// The span exporter's own machinery (the OpenTelemetry SDK, the gRPC and HTTP/2 clients), which
/// logs every export attempt at `debug`: logged from `info` up, whatever `LOG_LEVEL` says.
const EXPORTER_TARGETS: [&str; 5] = ["opentelemetry", "tonic", "tower", "h2", "hyper"];

/// What the log shows: the level asked for, less the command span.
struct Logged(LevelFilter);

impl Logged {
    fn shows(&self, meta: &Metadata<'_>) -> bool {
        let target = meta.target();
        let level = if EXPORTER_TARGETS.iter().any(|t| target.starts_with(t)) {
            self.0.min(LevelFilter::INFO)
        } else {
            self.0
        };
        level >= *meta.level() && !(meta.is_span() && target == COMMAND_SPAN_TARGET)
    }
}

impl<S> Filter<S> for Logged {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        self.shows(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.shows(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.0)
    }
}

/// What goes to OpenTelemetry: nothing until a tracer is installed, then spans and events down
/// to `EXPORTED_LEVEL` (events outside any span are passed over by the layer).
pub(crate) struct Exported;

impl Exported {
    fn exports(meta: &Metadata<'_>) -> bool {
        exporting() && EXPORTED_LEVEL >= *meta.level()
    }
}

impl<S> Filter<S> for Exported {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        Self::exports(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if Self::exports(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(if exporting() {
            EXPORTED_LEVEL
        } else {
            LevelFilter::OFF
        })
    }
}

/// The OpenTelemetry layer once installed; nothing before. The subscriber is set up at start,
/// before the settings of the exporter are known.
pub(crate) struct Installed;

impl Layer<Registry> for Installed {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, Registry>) {
        if let Some(layer) = OTEL.get() {
            layer.on_new_span(attrs, id, ctx);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, Registry>) {
        if let Some(layer) = OTEL.get() {
            layer.on_record(id, values, ctx);
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, Registry>) {
        if let Some(layer) = OTEL.get() {
            layer.on_follows_from(id, follows, ctx);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, Registry>) {
        if let Some(layer) = OTEL.get() {
            layer.on_event(event, ctx);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, Registry>) {
        if let Some(layer) = OTEL.get() {
            layer.on_enter(id, ctx);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, Registry>) {
        if let Some(layer) = OTEL.get() {
            layer.on_exit(id, ctx);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, Registry>) {
        if let Some(layer) = OTEL.get() {
            layer.on_close(id, ctx);
        }
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, Registry>) {
        if let Some(layer) = OTEL.get() {
            layer.on_id_change(old, new, ctx);
        }
    }

    // SAFETY: the pointers handed out are to `self` or, through the inner layer's own
    // `downcast_raw`, to parts of a layer in a static: both outlive `&self`.
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            return Some(self as *const Self as *const ());
        }
        // `tracing_opentelemetry::OpenTelemetrySpanExt` finds the layer's context this way.
        OTEL.get()
            .and_then(|layer| unsafe { layer.downcast_raw(id) })
    }
}

//! Log output: readable text on a terminal; one JSON object per line under systemd (where
//! the journal indexes the fields) or with `log.format = "json"`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Sets up logging for a command that has a config. `RUST_LOG`, when set, overrides
/// `log.level`. A second call is a no-op.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    install(
        quiet_dependencies(filter, &config.level),
        config.format == LogFormat::Json || under_systemd,
    );
}

/// The scheduler crate logs its internals at INFO at every start and reload; they say nothing
/// an operator can act on. Its warnings stay, and a filter that names it still wins.
fn quiet_dependencies(filter: EnvFilter, level: &str) -> EnvFilter {
    const SCHEDULER: &str = "tokio_cron_scheduler";
    let named = level.contains(SCHEDULER)
        || std::env::var("RUST_LOG").is_ok_and(|value| value.contains(SCHEDULER));
    match format!("{SCHEDULER}=warn").parse() {
        Ok(directive) if !named => filter.add_directive(directive),
        _ => filter,
    }
}

/// For `orgsync demo` and the standalone simulator: only warnings and errors, so the
/// demo's own output stays readable.
pub fn init_for_demo() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    install(filter, false);
}

fn install(filter: EnvFilter, json: bool) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
    // Already initialised (a test, or the demo running the daemon in-process): keep that one.
    drop(result);
}

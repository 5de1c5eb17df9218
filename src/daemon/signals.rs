//! `orgsync run`: start the daemon, then serve signals until SIGTERM or SIGINT, keeping systemd
//! informed (docs/install.md, "Signals": SIGUSR1 syncs, SIGHUP reloads then syncs,
//! SIGTERM/SIGINT stop).

use std::path::Path;

use tokio::signal::unix::{signal, SignalKind};

use super::notify::Notifier;
use super::{Daemon, DaemonError};
use crate::config::Config;
use crate::queue::Trigger;

pub async fn run(
    config: Config,
    config_path: &Path,
    notifier: Notifier,
) -> Result<(), DaemonError> {
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let daemon = Daemon::start(config, Some(config_path.to_owned())).await?;
    let mut activity = daemon.activity();
    notifier.ready(&activity.borrow_and_update());
    let mut watchdog = notifier.watchdog_interval().map(|every| {
        let mut interval = tokio::time::interval(every);
        // After a stall, one ping now and the next a full interval later, not a burst.
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    let mut fatal = daemon.fatal();
    let mut failure = None;
    tracing::info!(pid = std::process::id(), "orgsync is running");
    loop {
        tokio::select! {
            _ = usr1.recv() => {
                tracing::info!("SIGUSR1: sync requested");
                daemon.request_sync(Trigger::Signal);
            }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the config");
                notifier.reloading();
                daemon.reload().await;
                notifier.ready(&activity.borrow_and_update());
            }
            // The sender lives as long as `daemon`, so this never fails while we loop.
            Ok(()) = activity.changed() => notifier.status(&activity.borrow_and_update()),
            () = tick(watchdog.as_mut()) => notifier.watchdog(),
            Ok(()) = fatal.changed() => {
                failure = fatal.borrow_and_update().clone();
                if failure.is_some() {
                    notifier.status(&activity.borrow_and_update());
                    break;
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("stopping");
    notifier.stopping();
    daemon.shutdown().await;
    match failure {
        Some(problem) => Err(DaemonError::StoreReplaced(problem)),
        None => Ok(()),
    }
}

async fn tick(interval: Option<&mut tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

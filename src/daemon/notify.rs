//! systemd's readiness protocol (sd_notify(3)) for `Type=notify`: READY=1 once the store is
//! open and the socket listens, STATUS= with what the daemon is doing, WATCHDOG=1 pings,
//! RELOADING=1 around a SIGHUP, STOPPING=1 on the way out. Without `NOTIFY_SOCKET` (not
//! under systemd) every call does nothing.
//!
//! sd-notify reads `NOTIFY_SOCKET` again on every call and so needs it left in the environment,
//! where any process orgsync started would inherit it and could report on orgsync's behalf.
//! Instead [`Notifier::from_env`] reads the variables once, before the runtime's threads exist,
//! and removes them; messages go to the remembered address. sd-notify still supplies the
//! message formats and the `WATCHDOG_USEC`/`WATCHDOG_PID` rules.

use std::ffi::OsString;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use sd_notify::NotifyState;

const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// Where to send notifications, if anywhere.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<SocketAddr>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Takes the notify socket and the watchdog interval from the environment, and removes
    /// `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from it.
    ///
    /// Call it before starting any thread: changing the environment while another thread
    /// reads it is undefined behaviour in glibc.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os(NOTIFY_SOCKET).filter(|path| !path.is_empty());
        // Honours WATCHDOG_PID: a watchdog meant for another process is not ours to feed.
        let watchdog = sd_notify::watchdog_enabled().filter(|interval| !interval.is_zero());
        for name in [NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID] {
            std::env::remove_var(name);
        }
        let socket = socket.and_then(|path| match address(&path) {
            Ok(address) => Some(address),
            Err(error) => {
                tracing::warn!(%error, path = %path.to_string_lossy(), "NOTIFY_SOCKET is not a usable socket address; not notifying systemd");
                None
            }
        });
        Notifier {
            watchdog: watchdog.filter(|_| socket.is_some()),
            socket,
        }
    }

    /// How often to send WATCHDOG=1: half of `WatchdogSec=`, as sd_watchdog_enabled(3)
    /// advises, so one late ping does not get the daemon killed.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|interval| interval / 2)
    }

    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// RELOADING=1 with the MONOTONIC_USEC that systemd 253 and later require next to it;
    /// follow it with [`Notifier::ready`] once the reload is done.
    pub fn reloading(&self) {
        let mut states = vec![NotifyState::Reloading];
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        self.send(&states);
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        let Some(address) = &self.socket else {
            return;
        };
        let message: String = states.iter().map(|state| format!("{state}\n")).collect();
        let sent = UnixDatagram::unbound()
            .and_then(|socket| socket.send_to_addr(message.as_bytes(), address));
        if let Err(error) = sent {
            // systemd going away is no reason to stop mirroring; say so and carry on.
            tracing::warn!(%error, "cannot notify systemd");
        }
    }
}

/// A path, or an abstract socket when it starts with `@` (what systemd uses in containers).
fn address(path: &OsString) -> io::Result<SocketAddr> {
    match path.as_bytes().split_first() {
        Some((b'@', name)) => SocketAddr::from_abstract_name(name),
        _ => SocketAddr::from_pathname(path),
    }
}

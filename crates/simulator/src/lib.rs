//! A WeCom (企业微信) contact API on loopback, for the tests, the benchmarks and `orgsync demo`.
//!
//! It serves WeCom's own JSON for `gettoken`, `department/{list,simplelist,get}` and
//! `user/{list,simplelist,get,list_id,getuserid,get_userid_by_email}`, `agent/get` (the app's
//! visible range), and `auth/getuserinfo` for password-free login with
//! codes a test mints (`login_code`), with the behaviour WeCom documents: tokens that
//! expire and can be revoked, the app's visible range (departments, and members named
//! individually), the fields withheld from apps created
//! after 2022-06-20, the contact-sync secret's privileges, the 45033/45009 throttles. Faults
//! (errcodes, HTTP errors, bad or hand-written bodies, closed or reset connections, delays,
//! hangs) can be scripted per endpoint, and every call is counted and logged with its query.
//! [`CallbackEncryptor`], [`ContactEvent`] and [`envelope_xml`] build contact-change callbacks
//! encrypted and signed as WeCom sends them.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use orgsync_simulator::{Directory, Endpoint, Fault, Simulator};
//!
//! let sim = Simulator::start(Directory::sample()).await?;
//! sim.inject(Fault::Errcode(45033).on(Endpoint::UserList).times(2));
//! // … point the client at sim.api_base() and sync …
//! assert_eq!(sim.calls().get(Endpoint::GetToken), 1);
//! # Ok(()) }
//! ```

mod api;
mod callback_crypto;
mod callback_sender;
mod callback_xml;
mod clock;
mod control;
mod directory;
mod endpoint;
mod errcode;
mod fault;
mod generate;
mod http;
mod limits;
mod login;
mod lookup;
mod names;
mod requests;
mod rng;
mod sample;
mod server;
mod state;
mod tenant;
mod tokens;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use callback_crypto::{CallbackEncryptor, CallbackKeyError, SealedCallback};
pub use callback_sender::{CallbackFaults, CallbackTarget, Sent};
pub use callback_xml::{envelope_xml, ContactEvent, Payload};
pub use directory::{
    Directory, DirectoryError, ExtAttr, ExtAttrItem, ExtText, ExtWeb, Gender, SimDepartment,
    SimUser,
};
pub use endpoint::{CallCounts, Endpoint};
pub use fault::{Fault, FaultRule};
pub use generate::MutationSummary;
pub use requests::Request;

use state::{lock, read, Shared};

/// A running simulator. Dropping it stops the server (open connections are aborted).
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Serves `directory` on an ephemeral loopback port.
    pub async fn start(directory: Directory) -> std::io::Result<Simulator> {
        Simulator::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), directory).await
    }

    pub async fn start_on(addr: SocketAddr, directory: Directory) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(directory));
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(server::run(listener, http::router(shared.clone()), stopped));
        Ok(Simulator {
            addr,
            shared,
            stop,
            server: Some(server),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What orgsync's `wecom.api_base` expects: scheme, host and port, no `/cgi-bin`.
    pub fn api_base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the directory or the app settings, e.g. between two syncs. Every edit makes
    /// outstanding `list_id` cursors stale. Do not call the simulator from inside `f`. With a
    /// callback target set ([`Simulator::send_callbacks`]), every change is sent there.
    pub fn edit<R>(&self, f: impl FnOnce(&mut Directory) -> R) -> R {
        self.shared.edit(f)
    }

    /// From now on, sends contact-change callbacks for every change to `target`, as WeCom
    /// does once a callback URL is saved in the console; `None` stops them. Call it inside a
    /// Tokio runtime: deliveries run on it.
    pub fn send_callbacks(&self, target: Option<CallbackTarget>) -> Result<(), CallbackKeyError> {
        self.shared.send_callbacks(target)
    }

    /// What the callbacks still to be sent suffer (duplicates, losses, reordering).
    pub fn callback_faults(&self, faults: CallbackFaults) {
        self.shared.callback_faults(faults);
    }

    /// How many callbacks were delivered, lost on purpose, or never answered `200`.
    pub fn callbacks_sent(&self) -> &Sent {
        &self.shared.callbacks_sent
    }

    /// Gives the member `old` the userid `new`, and sends the one `update_user` callback with
    /// `NewUserID` that WeCom sends for it. `false` when there is no such member.
    pub fn rename_user(&self, old: &str, new: &str) -> bool {
        self.shared.rename_user(old, new)
    }

    /// A copy of the directory as it is now.
    pub fn directory(&self) -> Directory {
        read(&self.shared.tenant).directory.clone()
    }

    /// Queues a fault: `sim.inject(Fault::Reset)` hits the next call of any kind,
    /// `sim.inject(Fault::Hang.on(Endpoint::UserList).department(3))` only that one.
    pub fn inject(&self, rule: impl Into<FaultRule>) {
        lock(&self.shared.faults).push(rule.into());
    }

    pub fn calls(&self) -> CallCounts {
        *self.shared.calls.borrow()
    }

    /// Waits until `endpoint` has received at least `count` calls: lets a test act while a
    /// client's call is known to be in flight, without sleeping.
    pub async fn wait_for_calls(&self, endpoint: Endpoint, count: u64) -> CallCounts {
        let mut calls = self.shared.calls.subscribe();
        // The sender lives in `self.shared`, so the wait cannot fail while `self` exists.
        let reached = calls.wait_for(|calls| calls.get(endpoint) >= count).await;
        reached.map_or_else(|_| self.calls(), |calls| *calls)
    }

    /// The calls received so far, oldest first, each with its query and arrival time (the most
    /// recent 10,000 only). A call that `wait_for_calls` has seen is already here.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).snapshot()
    }

    /// Holds calls to `endpoint` at the door until [`release`](Simulator::release): they are
    /// counted, logged and in flight, but get no answer (not even a fault's) until then. Lets a
    /// test have several calls in flight at once before any is answered, or change the
    /// simulator while a call waits, without sleeping.
    pub fn hold(&self, endpoint: Endpoint) {
        self.set_held(endpoint, true);
    }

    /// Lets the held calls to `endpoint` go on, and later ones through.
    pub fn release(&self, endpoint: Endpoint) {
        self.set_held(endpoint, false);
    }

    fn set_held(&self, endpoint: Endpoint, held: bool) {
        self.shared
            .held
            .send_modify(|holds| holds[endpoint.index()] = held);
    }

    /// Invalidates every token issued so far, as WeCom may "for operational reasons": they now
    /// get 40014, and the next `gettoken` issues a new one.
    pub fn revoke_tokens(&self) {
        lock(&self.shared.tokens).revoke_all();
    }

    /// Every access token `gettoken` has issued so far: what a test looks for in output that
    /// must never contain one.
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.shared.tokens).issued()
    }

    /// Makes every token issued so far expire now: they get 42001 from here on.
    pub fn expire_tokens(&self) {
        lock(&self.shared.tokens).expire_all();
    }

    /// A password-free login code, as WeCom hands the browser when the member `userid` opens the
    /// app: `auth/getuserinfo` exchanges it once, within five minutes, for the userid as the
    /// directory spells it. The userid is looked up case-insensitively; one the directory does
    /// not have still gets a code (a member who opened the app and has left since), answered
    /// with the userid as given.
    pub fn login_code(&self, userid: &str) -> String {
        self.shared.any_login_code(userid)
    }

    /// A login code for someone who is not a member of the corp: `auth/getuserinfo` answers an
    /// `openid` and an `external_userid`, new ones for every code.
    pub fn outsider_login_code(&self) -> String {
        self.shared.outsider_login_code()
    }

    /// Ages every login code issued so far past its five minutes: they now get 40029.
    pub fn expire_login_codes(&self) {
        lock(&self.shared.login).expire_all();
    }

    /// Starts a new day for the daily block of `user/getuserid` and `user/get_userid_by_email`,
    /// as midnight (China time) does: the failed lookups counted so far are forgotten.
    pub fn new_day(&self) {
        lock(&self.shared.lookups).new_day();
    }

    /// Stops serving and waits until the listener is closed.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(server) = self.server.take() {
            if let Err(error) = server.await {
                tracing::warn!(%error, "simulator server task failed");
            }
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Runs a standalone simulator on `addr` until ctrl-c (`orgsync simulator`). `ready` is called
/// once it listens, with its API base (the port chosen when `addr` asks for port 0).
pub async fn serve(
    addr: SocketAddr,
    directory: Directory,
    ready: impl FnOnce(&str),
) -> std::io::Result<()> {
    let simulator = Simulator::start_on(addr, directory).await?;
    ready(&simulator.api_base());
    let stopped = tokio::signal::ctrl_c().await;
    simulator.shutdown().await;
    stopped
}

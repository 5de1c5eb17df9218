//! What the server's tasks and the test's `Simulator` handle share.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::watch;

use super::directory::Directory;
use super::endpoint::{CallCounts, Endpoint};
use super::fault::FaultQueue;
use super::limits::Limits;
use super::login::{LoginCodes, Person};
use super::lookup::LookupFailures;
use super::requests::{RequestLog, KEPT};
use super::tenant::Tenant;
use super::tokens::Tokens;

pub(crate) struct Shared {
    pub(crate) tenant: RwLock<Tenant>,
    pub(crate) tokens: Mutex<Tokens>,
    /// Password-free login codes, for `auth/getuserinfo`.
    pub(crate) login: Mutex<LoginCodes>,
    /// Today's failed userid lookups, for the daily block.
    pub(crate) lookups: Mutex<LookupFailures>,
    pub(crate) faults: Mutex<FaultQueue>,
    pub(crate) limits: Limits,
    /// A watch rather than atomics so a test can wait for "the client has made its call".
    pub(crate) calls: watch::Sender<CallCounts>,
    pub(crate) requests: Mutex<RequestLog>,
    /// Per API: whether its calls wait at the door (`Simulator::hold`). A watch so the waiting
    /// calls wake up when the test releases them.
    pub(crate) held: watch::Sender<[bool; Endpoint::ALL.len()]>,
}

impl Shared {
    pub(crate) fn new(directory: Directory) -> Shared {
        Shared {
            tenant: RwLock::new(Tenant::new(directory)),
            tokens: Mutex::new(Tokens::new()),
            login: Mutex::new(LoginCodes::new()),
            lookups: Mutex::new(LookupFailures::default()),
            faults: Mutex::new(FaultQueue::default()),
            limits: Limits::new(),
            calls: watch::Sender::new(CallCounts::default()),
            requests: Mutex::new(RequestLog::new(KEPT)),
            held: watch::Sender::new([false; Endpoint::ALL.len()]),
        }
    }

    /// Runs `f` on the directory and reindexes afterwards, also when `f` panics, so a test that
    /// failed inside an edit leaves a consistent simulator behind for the next call.
    pub(crate) fn edit<R>(&self, f: impl FnOnce(&mut Directory) -> R) -> R {
        struct Reindex<'a>(RwLockWriteGuard<'a, Tenant>);
        impl Drop for Reindex<'_> {
            fn drop(&mut self) {
                self.0.reindex();
            }
        }
        let mut tenant = Reindex(write(&self.tenant));
        f(&mut tenant.0.directory)
    }
}

impl Shared {
    /// A login code for the member `userid` (looked up case-insensitively, kept as the directory
    /// spells it), or `None` when the directory has no such member.
    pub(crate) fn member_login_code(&self, userid: &str) -> Option<String> {
        let userid = read(&self.tenant).user(userid)?.userid.clone();
        Some(lock(&self.login).issue(Person::Member(userid)))
    }

    /// A login code for `userid` whether or not the directory has such a member: WeCom issued
    /// it, and the member may have left since.
    pub(crate) fn any_login_code(&self, userid: &str) -> String {
        self.member_login_code(userid)
            .unwrap_or_else(|| lock(&self.login).issue(Person::Member(userid.to_owned())))
    }

    /// A login code for someone who is not a member, a new outsider every time.
    pub(crate) fn outsider_login_code(&self) -> String {
        let mut login = lock(&self.login);
        let outsider = login.outsider();
        login.issue(outsider)
    }
}

// The guarded values stay well-formed even if a holder panicked (a test's edit closure is the
// only code that can), so a poisoned lock is used as is instead of failing every later call.

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

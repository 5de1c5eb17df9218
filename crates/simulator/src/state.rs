//! What the server's tasks and the test's `Simulator` handle share.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::watch;

use super::directory::Directory;
use super::endpoint::{CallCounts, Endpoint};
use super::fault::FaultQueue;
use super::limits::Limits;
use super::requests::{RequestLog, KEPT};
use super::tenant::Tenant;
use super::tokens::Tokens;

pub(crate) struct Shared {
    pub(crate) tenant: RwLock<Tenant>,
    pub(crate) tokens: Mutex<Tokens>,
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

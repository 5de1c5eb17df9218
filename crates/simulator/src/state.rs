//! What the server's tasks and the test's `Simulator` handle share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::watch;

use super::callback_crypto::CallbackKeyError;
use super::callback_sender::{CallbackFaults, CallbackTarget, Sender, Sent};
use super::callback_xml::{ContactEvent, Payload};
use super::directory::{Directory, SimDepartment, SimUser};
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
    /// Where contact-change callbacks go, when set.
    pub(crate) callbacks: Mutex<Option<Sender>>,
    pub(crate) callbacks_sent: Arc<Sent>,
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
            callbacks: Mutex::new(None),
            callbacks_sent: Arc::new(Sent::default()),
        }
    }

    /// Runs `f` on the directory and reindexes afterwards, also when `f` panics, so a test that
    /// failed inside an edit leaves a consistent simulator behind for the next call.
    ///
    /// With a callback target set, every change `f` makes is sent there as WeCom would send it.
    pub(crate) fn edit<R>(&self, f: impl FnOnce(&mut Directory) -> R) -> R {
        self.edit_announcing(f, true)
    }

    /// [`Shared::edit`] without callbacks, for a change announced otherwise (a rename).
    pub(crate) fn edit_quietly<R>(&self, f: impl FnOnce(&mut Directory) -> R) -> R {
        self.edit_announcing(f, false)
    }

    fn edit_announcing<R>(&self, f: impl FnOnce(&mut Directory) -> R, announce: bool) -> R {
        struct Reindex<'a>(RwLockWriteGuard<'a, Tenant>);
        impl Drop for Reindex<'_> {
            fn drop(&mut self) {
                self.0.reindex();
            }
        }
        let mut sender = lock(&self.callbacks);
        let before = (announce && sender.is_some()).then(|| read(&self.tenant).directory.clone());
        let mut tenant = Reindex(write(&self.tenant));
        let result = f(&mut tenant.0.directory);
        if let (Some(sender), Some(before)) = (sender.as_mut(), before) {
            let after = &tenant.0.directory;
            let events = changes(&before, after, sender.payload());
            sender.send(after, &events, &self.callbacks_sent);
        }
        result
    }
}

/// The callbacks WeCom sends for the change from `before` to `after`: departments created,
/// members created, updated and deleted, departments updated and deleted. With ID-only
/// payloads `update_party` fires only when the parent changed, as WeCom does.
fn changes<'a>(
    before: &'a Directory,
    after: &'a Directory,
    payload: Payload,
) -> Vec<ContactEvent<'a>> {
    let old_users: HashMap<&str, &SimUser> = before
        .users
        .iter()
        .map(|u| (u.userid.as_str(), u))
        .collect();
    let new_users: HashMap<&str, &SimUser> =
        after.users.iter().map(|u| (u.userid.as_str(), u)).collect();
    let old_departments: HashMap<u32, &SimDepartment> =
        before.departments.iter().map(|d| (d.id, d)).collect();
    let new_departments: HashMap<u32, &SimDepartment> =
        after.departments.iter().map(|d| (d.id, d)).collect();
    let mut events = Vec::new();
    for department in &after.departments {
        if !old_departments.contains_key(&department.id) {
            events.push(ContactEvent::CreateParty(department));
        }
    }
    for user in &after.users {
        match old_users.get(user.userid.as_str()) {
            None => events.push(ContactEvent::CreateUser(user)),
            Some(old) if *old != user => events.push(ContactEvent::UpdateUser {
                user,
                old_userid: None,
            }),
            Some(_) => {}
        }
    }
    for user in &before.users {
        if !new_users.contains_key(user.userid.as_str()) {
            events.push(ContactEvent::DeleteUser(&user.userid));
        }
    }
    for department in &after.departments {
        let changed = old_departments
            .get(&department.id)
            .is_some_and(|old| match payload {
                Payload::Full => *old != department,
                Payload::IdsOnly => old.parentid != department.parentid,
            });
        if changed {
            events.push(ContactEvent::UpdateParty(department));
        }
    }
    for department in before.departments.iter().rev() {
        if !new_departments.contains_key(&department.id) {
            events.push(ContactEvent::DeleteParty(department.id));
        }
    }
    events
}

impl Shared {
    /// See `Simulator::send_callbacks`.
    pub(crate) fn send_callbacks(
        &self,
        target: Option<CallbackTarget>,
    ) -> Result<(), CallbackKeyError> {
        let corp_id = read(&self.tenant).directory.corp_id.clone();
        let sender = target
            .map(|target| Sender::start(target, &corp_id, self.callbacks_sent.clone()))
            .transpose()?;
        *lock(&self.callbacks) = sender;
        Ok(())
    }

    /// See `Simulator::callback_faults`.
    pub(crate) fn callback_faults(&self, faults: CallbackFaults) {
        if let Some(sender) = lock(&self.callbacks).as_mut() {
            sender.set_faults(faults);
        }
    }

    /// See `Simulator::rename_user`.
    pub(crate) fn rename_user(&self, old: &str, new: &str) -> bool {
        let renamed = self.edit_quietly(|directory| {
            let user = directory.users.iter_mut().find(|u| u.userid == old)?;
            user.userid = new.to_owned();
            let user = user.clone();
            // WeCom moves every reference to the member with them.
            let references = directory
                .users
                .iter_mut()
                .flat_map(|u| u.direct_leader.iter_mut())
                .chain(
                    directory
                        .departments
                        .iter_mut()
                        .flat_map(|d| d.department_leader.iter_mut()),
                )
                .chain(directory.visible_users.iter_mut());
            for reference in references.filter(|r| r.as_str() == old) {
                new.clone_into(reference);
            }
            Some(user)
        });
        let Some(user) = renamed else {
            return false;
        };
        // The callbacks' lock before the tenant's, in the order `edit` takes them.
        let mut callbacks = lock(&self.callbacks);
        let tenant = read(&self.tenant);
        if let Some(sender) = callbacks.as_mut() {
            let event = ContactEvent::UpdateUser {
                user: &user,
                old_userid: Some(old),
            };
            sender.send(&tenant.directory, &[event], &self.callbacks_sent);
        }
        true
    }

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

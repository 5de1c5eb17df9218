//! The JSON WeCom sends, seen through a token's scope: departments outside the visible range are
//! dropped from a member's arrays, and withheld fields are absent keys, never empty strings.

use serde::Serialize;

use super::directory::{ExtAttr, Gender, SimDepartment, SimUser};
use super::errcode::ApiError;
use super::tenant::{Scope, Tenant};

/// A success body: `errcode` and `errmsg` first, then the payload's fields.
pub(crate) fn ok<T: Serialize>(payload: T) -> Result<Vec<u8>, ApiError> {
    #[derive(Serialize)]
    struct Success<T> {
        errcode: i64,
        errmsg: &'static str,
        #[serde(flatten)]
        payload: T,
    }
    // Serializing these plain structs cannot fail; if it ever did, WeCom's answer to an internal
    // error is "system busy".
    serde_json::to_vec(&Success {
        errcode: 0,
        errmsg: "ok",
        payload,
    })
    .map_err(|_| ApiError::new(-1))
}

#[derive(Serialize)]
pub(crate) struct DepartmentView<'a> {
    id: u32,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name_en: Option<&'a str>,
    /// Only heads the token can see.
    department_leader: Vec<&'a str>,
    parentid: u32,
    order: u32,
}

impl<'a> DepartmentView<'a> {
    pub(crate) fn new(tenant: &Tenant, scope: Scope, department: &'a SimDepartment) -> Self {
        DepartmentView {
            id: department.id,
            name: &department.name,
            name_en: department.name_en.as_deref(),
            department_leader: visible_userids(tenant, scope, &department.department_leader),
            parentid: department.parentid,
            order: department.order,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct DepartmentIdView {
    id: u32,
    parentid: u32,
    order: u32,
}

impl DepartmentIdView {
    pub(crate) fn new(department: &SimDepartment) -> Self {
        DepartmentIdView {
            id: department.id,
            parentid: department.parentid,
            order: department.order,
        }
    }
}

/// `user/get` and each `user/list` entry, in WeCom's field order.
#[derive(Serialize)]
pub(crate) struct UserView<'a> {
    userid: &'a str,
    name: &'a str,
    department: Vec<u32>,
    order: Vec<u32>,
    position: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mobile: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gender: Option<Gender>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    biz_mail: Option<&'a str>,
    is_leader_in_dept: Vec<u8>,
    direct_leader: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    avatar: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thumb_avatar: Option<&'a str>,
    telephone: &'a str,
    alias: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    main_department: Option<u32>,
    extattr: &'a ExtAttr,
    status: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    qr_code: Option<&'a str>,
    external_position: &'a str,
}

impl<'a> UserView<'a> {
    pub(crate) fn new(tenant: &Tenant, scope: Scope, user: &'a SimUser) -> Self {
        let settings = &tenant.directory;
        let sensitive = !(scope == Scope::App && settings.withhold_sensitive);
        let thumb = !(scope == Scope::App && settings.withhold_thumb_avatar);
        let shown = |field: &'a str| sensitive.then_some(field);
        let memberships = Memberships::new(tenant, scope, user);
        UserView {
            userid: &user.userid,
            name: &user.name,
            department: memberships.ids(),
            order: memberships.parallel(&user.order),
            position: &user.position,
            mobile: shown(&user.mobile),
            gender: sensitive.then_some(user.gender),
            email: shown(&user.email),
            biz_mail: shown(&user.biz_mail),
            is_leader_in_dept: memberships.parallel(&user.is_leader_in_dept),
            direct_leader: visible_userids(tenant, scope, &user.direct_leader),
            avatar: shown(&user.avatar),
            thumb_avatar: thumb.then_some(user.thumb_avatar.as_str()),
            telephone: &user.telephone,
            alias: &user.alias,
            address: shown(&user.address),
            main_department: Some(user.main_department)
                .filter(|&id| tenant.can_see_department(scope, id)),
            extattr: &user.extattr,
            status: user.status,
            qr_code: shown(&user.qr_code),
            external_position: &user.external_position,
        }
    }
}

/// The leaders in `userids` the token can see: one outside the visible range is left out.
fn visible_userids<'a>(tenant: &Tenant, scope: Scope, userids: &'a [String]) -> Vec<&'a str> {
    userids
        .iter()
        .filter(|userid| tenant.can_see_userid(scope, userid))
        .map(String::as_str)
        .collect()
}

/// `user/simplelist` entries.
#[derive(Serialize)]
pub(crate) struct SimpleUserView<'a> {
    userid: &'a str,
    name: &'a str,
    department: Vec<u32>,
}

impl<'a> SimpleUserView<'a> {
    pub(crate) fn new(tenant: &Tenant, scope: Scope, user: &'a SimUser) -> Self {
        SimpleUserView {
            userid: &user.userid,
            name: &user.name,
            department: Memberships::new(tenant, scope, user).ids(),
        }
    }
}

/// The positions in a member's `department` array the token may see; the parallel arrays are
/// cut at the same positions so they stay aligned.
struct Memberships<'a> {
    user: &'a SimUser,
    visible: Vec<usize>,
}

impl<'a> Memberships<'a> {
    fn new(tenant: &Tenant, scope: Scope, user: &'a SimUser) -> Self {
        let visible = (0..user.department.len())
            .filter(|&at| tenant.can_see_department(scope, user.department[at]))
            .collect();
        Memberships { user, visible }
    }

    fn ids(&self) -> Vec<u32> {
        self.parallel(&self.user.department)
    }

    /// A hand-edited user may have a short parallel array; the missing entries read as 0.
    fn parallel<T: Copy + Default>(&self, values: &[T]) -> Vec<T> {
        self.visible
            .iter()
            .map(|&at| values.get(at).copied().unwrap_or_default())
            .collect()
    }
}

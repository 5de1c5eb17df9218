//! What each WeCom API answers, once a call got past the faults and throttles: token rules,
//! permissions, parameters, and the body.

use std::collections::{HashMap, HashSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::directory::{SimDepartment, SimUser};
use super::endpoint::Endpoint;
use super::errcode::ApiError;
use super::login::Person;
use super::state::{lock, read, Shared};
use super::tenant::{Scope, Tenant};
use super::wire::{ok, DepartmentIdView, DepartmentView, SimpleUserView, UserView};

pub(crate) struct Call<'a> {
    pub(crate) endpoint: Endpoint,
    pub(crate) params: &'a HashMap<String, String>,
    pub(crate) body: &'a [u8],
    pub(crate) is_post: bool,
}

type Answer = Result<Vec<u8>, ApiError>;

pub(crate) fn answer(shared: &Shared, call: &Call<'_>) -> Answer {
    let params = call.params;
    match call.endpoint {
        Endpoint::GetToken => gettoken(shared, params),
        Endpoint::DepartmentList => with_token(shared, call, |tenant, scope| {
            let departments = departments_under(tenant, scope, params)?;
            ok(DepartmentList {
                department: departments
                    .into_iter()
                    .map(|d| DepartmentView::new(tenant, scope, d))
                    .collect(),
            })
        }),
        Endpoint::DepartmentSimpleList => with_token(shared, call, |tenant, scope| {
            let departments = departments_under(tenant, scope, params)?;
            ok(DepartmentIdList {
                department_id: departments.into_iter().map(DepartmentIdView::new).collect(),
            })
        }),
        Endpoint::DepartmentGet => with_token(shared, call, |tenant, scope| {
            let id = department_id(params, "id")?.ok_or_else(|| ApiError::invalid_param("id"))?;
            let department = visible_department(tenant, scope, id)?;
            ok(DepartmentGet {
                department: DepartmentView::new(tenant, scope, department),
            })
        }),
        Endpoint::UserList => with_token(shared, call, |tenant, scope| {
            user_list(tenant, scope, params, UserView::new)
        }),
        Endpoint::UserSimpleList => with_token(shared, call, |tenant, scope| {
            user_list(tenant, scope, params, SimpleUserView::new)
        }),
        Endpoint::UserGet => with_token(shared, call, |tenant, scope| {
            let userid = param(params, "userid").ok_or_else(|| ApiError::new(41009))?;
            let user = tenant.user(userid).ok_or_else(|| ApiError::new(60111))?;
            if !tenant.can_see_user(scope, user) {
                return Err(ApiError::new(60011));
            }
            ok(UserView::new(tenant, scope, user))
        }),
        Endpoint::UserListId => {
            with_token(shared, call, |tenant, scope| list_id(tenant, scope, call))
        }
        Endpoint::UserGetUserId => with_token(shared, call, |tenant, scope| {
            lookup_userid(shared, tenant, scope, call, |request| {
                let request: MobileLookup = json_body(request)?;
                if !(5..=32).contains(&request.mobile.len()) {
                    return Err(ApiError::invalid_param("mobile"));
                }
                Ok(Box::new(move |user: &SimUser| {
                    user.mobile == request.mobile
                }))
            })
        }),
        Endpoint::UserGetUserIdByEmail => with_token(shared, call, |tenant, scope| {
            lookup_userid(shared, tenant, scope, call, |request| {
                let request: EmailLookup = json_body(request)?;
                if request.email.is_empty() {
                    return Err(ApiError::invalid_param("email"));
                }
                let business = match request.email_type {
                    1 => true,
                    2 => false,
                    _ => return Err(ApiError::invalid_param("email_type")),
                };
                Ok(Box::new(move |user: &SimUser| {
                    let address = if business {
                        &user.biz_mail
                    } else {
                        &user.email
                    };
                    !address.is_empty() && address.eq_ignore_ascii_case(&request.email)
                }))
            })
        }),
        Endpoint::AgentGet => with_token(shared, call, |tenant, scope| {
            only_for(scope, Scope::App)?;
            let agentid = param(params, "agentid").ok_or_else(|| ApiError::new(41011))?;
            // An app's token reads that app only: another agentid, or one that is not a
            // number, is an invalid agentid.
            if agentid.parse::<u32>().ok() != Some(tenant.directory.agent_id) {
                return Err(ApiError::new(40056));
            }
            ok(agent(tenant))
        }),
        Endpoint::AuthGetUserInfo => with_token(shared, call, |tenant, scope| {
            only_for(scope, Scope::App)?;
            let code = param(params, "code").ok_or_else(|| ApiError::new(41008))?;
            let person = lock(&shared.login).redeem(code)?;
            match person {
                // WeCom identifies the person; whether the app may see them is for later calls.
                Person::Member(userid) => ok(UserIdAnswer {
                    userid: tenant.user(&userid).map_or(userid.as_str(), |u| &u.userid),
                }),
                Person::Outsider {
                    openid,
                    external_userid,
                } => ok(OutsiderLogin {
                    openid: &openid,
                    external_userid: &external_userid,
                }),
            }
        }),
    }
}

/// `agent/get`: the app's visible range as WeCom lists it (the departments and members it
/// names, no tags), with none of the app's other details but `close`.
fn agent(tenant: &Tenant) -> AgentGet<'_> {
    AgentGet {
        agentid: tenant.directory.agent_id,
        allow_userinfos: AllowUsers {
            user: tenant
                .named_users()
                .map(|user| UserIdAnswer {
                    userid: &user.userid,
                })
                .collect(),
        },
        allow_partys: AllowParties {
            partyid: tenant.named_departments().collect(),
        },
        allow_tags: AllowTags { tagid: Vec::new() },
        close: 0,
    }
}

type Matcher = Box<dyn Fn(&SimUser) -> bool>;

/// `user/getuserid` and `user/get_userid_by_email`: the app's token only, POST only; the
/// userid of the first member `parse` matches that the app can see, or 46004, which counts
/// towards the day's block.
fn lookup_userid(
    shared: &Shared,
    tenant: &Tenant,
    scope: Scope,
    call: &Call<'_>,
    parse: impl FnOnce(&[u8]) -> Result<Matcher, ApiError>,
) -> Answer {
    only_for(scope, Scope::App)?;
    post_only(call)?;
    let day = super::lookup::today();
    let mut failures = lock(&shared.lookups);
    if failures.blocked(day, tenant.directory.headcount_limit) {
        return Err(ApiError::new(45009));
    }
    let matches = parse(call.body)?;
    let found = tenant
        .directory
        .users
        .iter()
        .find(|user| matches(user) && tenant.can_see_user(scope, user));
    match found {
        Some(user) => ok(UserIdAnswer {
            userid: &user.userid,
        }),
        None => {
            failures.fail(day);
            Err(ApiError::new(46004))
        }
    }
}

#[derive(Deserialize)]
struct MobileLookup {
    #[serde(default)]
    mobile: String,
}

#[derive(Deserialize)]
struct EmailLookup {
    #[serde(default)]
    email: String,
    #[serde(default = "business_email")]
    email_type: u8,
}

fn business_email() -> u8 {
    1
}

/// 48002 for an API the other secret's token may not call: messaging and OAuth belong to the
/// app, `list_id` to the contact-sync tool.
fn only_for(scope: Scope, needed: Scope) -> Result<(), ApiError> {
    if scope == needed {
        Ok(())
    } else {
        Err(ApiError::new(48002))
    }
}

/// The POST-only APIs answer any other method with 40058 naming the method.
fn post_only(call: &Call<'_>) -> Result<(), ApiError> {
    if call.is_post {
        Ok(())
    } else {
        Err(ApiError::invalid_param("method"))
    }
}

/// A POST body that does not parse as the API's request is WeCom's "wrong json format".
fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|_| ApiError::wrong_json())
}

/// Checks the call's token, then answers from the directory as that token may see it.
fn with_token(
    shared: &Shared,
    call: &Call<'_>,
    answer: impl FnOnce(&Tenant, Scope) -> Answer,
) -> Answer {
    let scope = lock(&shared.tokens).check(param(call.params, "access_token"))?;
    let tenant = read(&shared.tenant);
    let detail_api = matches!(
        call.endpoint,
        Endpoint::DepartmentList | Endpoint::DepartmentGet | Endpoint::UserList | Endpoint::UserGet
    );
    if scope == Scope::ContactSync && tenant.directory.contact_sync_detail_forbidden && detail_api {
        return Err(ApiError::new(48009));
    }
    answer(&tenant, scope)
}

fn gettoken(shared: &Shared, params: &HashMap<String, String>) -> Answer {
    let corpid = param(params, "corpid").ok_or_else(|| ApiError::new(41002))?;
    let secret = param(params, "corpsecret").ok_or_else(|| ApiError::new(41004))?;
    let (scope, ttl, reuse) = {
        let tenant = read(&shared.tenant);
        let directory = &tenant.directory;
        if corpid != directory.corp_id {
            return Err(ApiError::new(40013));
        }
        let scope = if secret == directory.corp_secret {
            Scope::App
        } else if directory.contact_sync_secret.as_deref() == Some(secret) {
            Scope::ContactSync
        } else {
            return Err(ApiError::new(40001));
        };
        (scope, directory.token_ttl_secs, directory.reuse_valid_token)
    };
    let grant = lock(&shared.tokens).grant(scope, ttl, reuse);
    ok(Token {
        access_token: grant.access_token,
        expires_in: grant.expires_in,
    })
}

/// A present, non-empty query parameter (WeCom treats `corpid=` as missing).
fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|value| !value.is_empty())
}

fn department_id(params: &HashMap<String, String>, name: &str) -> Result<Option<u32>, ApiError> {
    param(params, name)
        .map(|value| value.parse().map_err(|_| ApiError::invalid_param(name)))
        .transpose()
}

fn visible_department(tenant: &Tenant, scope: Scope, id: u32) -> Result<&SimDepartment, ApiError> {
    let department = tenant.department(id).ok_or_else(|| ApiError::new(60003))?;
    if tenant.can_see_department(scope, id) {
        Ok(department)
    } else {
        Err(ApiError::new(60011))
    }
}

/// `department/list` and `simplelist`: the whole visible tree, or `id` and everything under it.
fn departments_under<'t>(
    tenant: &'t Tenant,
    scope: Scope,
    params: &HashMap<String, String>,
) -> Result<Vec<&'t SimDepartment>, ApiError> {
    let ids = match department_id(params, "id")? {
        Some(id) => {
            visible_department(tenant, scope, id)?;
            tenant.subtree(id)
        }
        None => tenant
            .directory
            .departments
            .iter()
            .map(|d| d.id)
            .filter(|&id| tenant.can_see_department(scope, id))
            .collect(),
    };
    Ok(ids
        .into_iter()
        .filter_map(|id| tenant.department(id))
        .collect())
}

/// `user/list` and `user/simplelist`: the same members, each shown as the endpoint shows them.
fn user_list<'t, V: Serialize>(
    tenant: &'t Tenant,
    scope: Scope,
    params: &HashMap<String, String>,
    view: fn(&'t Tenant, Scope, &'t SimUser) -> V,
) -> Answer {
    let userlist = listed_members(tenant, scope, params)?
        .into_iter()
        .map(|user| view(tenant, scope, user))
        .collect();
    ok(UserList { userlist })
}

/// The members `user/list` and `user/simplelist` return: those directly in the department, or
/// with an honoured `fetch_child=1` those anywhere below it, each once.
fn listed_members<'t>(
    tenant: &'t Tenant,
    scope: Scope,
    params: &HashMap<String, String>,
) -> Result<Vec<&'t SimUser>, ApiError> {
    let id = department_id(params, "department_id")?
        .ok_or_else(|| ApiError::invalid_param("department_id"))?;
    visible_department(tenant, scope, id)?;
    let recursive =
        tenant.directory.honour_fetch_child && param(params, "fetch_child") == Some("1");
    let departments = if recursive {
        tenant.subtree(id)
    } else {
        vec![id]
    };
    let mut seen = HashSet::new();
    Ok(departments
        .into_iter()
        .flat_map(|department| tenant.member_positions(department))
        .filter(|&at| seen.insert(at))
        .filter_map(|at| tenant.directory.users.get(at))
        .collect())
}

#[derive(Deserialize)]
struct ListIdRequest {
    #[serde(default)]
    cursor: String,
    #[serde(default = "max_limit")]
    limit: usize,
}

const MAX_LIST_ID_LIMIT: usize = 10_000;

fn max_limit() -> usize {
    MAX_LIST_ID_LIMIT
}

/// `user/list_id`: one `{userid, department}` pair per membership, paged by an opaque cursor
/// that goes stale when the directory changes.
fn list_id(tenant: &Tenant, scope: Scope, call: &Call<'_>) -> Answer {
    only_for(scope, Scope::ContactSync)?;
    post_only(call)?;
    let request: ListIdRequest = if call.body.iter().all(u8::is_ascii_whitespace) {
        ListIdRequest {
            cursor: String::new(),
            limit: MAX_LIST_ID_LIMIT,
        }
    } else {
        json_body(call.body)?
    };
    if !(1..=MAX_LIST_ID_LIMIT).contains(&request.limit) {
        return Err(ApiError::invalid_param("limit"));
    }
    let users = &tenant.directory.users;
    let total: usize = users.iter().map(|u| u.department.len()).sum();
    let offset = if request.cursor.is_empty() {
        0
    } else {
        decode_cursor(&request.cursor)
            .filter(|&(revision, offset)| revision == cursor_revision(tenant) && offset <= total)
            .map(|(_, offset)| offset)
            .ok_or_else(|| ApiError::new(50100))?
    };
    let page: Vec<DeptUser<'_>> = users
        .iter()
        .flat_map(|user| {
            user.department.iter().map(move |&department| DeptUser {
                userid: &user.userid,
                department,
            })
        })
        .skip(offset)
        .take(request.limit)
        .collect();
    let end = offset + page.len();
    ok(ListId {
        next_cursor: if end < total {
            encode_cursor(cursor_revision(tenant), end)
        } else {
            String::new()
        },
        dept_user: page,
    })
}

fn cursor_revision(tenant: &Tenant) -> u32 {
    tenant.revision as u32
}

fn encode_cursor(revision: u32, offset: usize) -> String {
    format!("{revision:08X}{offset:08X}")
}

fn decode_cursor(cursor: &str) -> Option<(u32, usize)> {
    if cursor.len() != 16 || !cursor.is_ascii() {
        return None;
    }
    let revision = u32::from_str_radix(&cursor[..8], 16).ok()?;
    let offset = usize::from_str_radix(&cursor[8..], 16).ok()?;
    Some((revision, offset))
}

#[derive(Serialize)]
struct Token {
    access_token: String,
    expires_in: u64,
}

#[derive(Serialize)]
struct UserIdAnswer<'a> {
    userid: &'a str,
}

#[derive(Serialize)]
struct AgentGet<'a> {
    agentid: u32,
    allow_userinfos: AllowUsers<'a>,
    allow_partys: AllowParties,
    allow_tags: AllowTags,
    /// 0: the app is enabled.
    close: u8,
}

#[derive(Serialize)]
struct AllowUsers<'a> {
    user: Vec<UserIdAnswer<'a>>,
}

#[derive(Serialize)]
struct AllowParties {
    partyid: Vec<u32>,
}

#[derive(Serialize)]
struct AllowTags {
    tagid: Vec<u32>,
}

#[derive(Serialize)]
struct OutsiderLogin<'a> {
    openid: &'a str,
    external_userid: &'a str,
}

#[derive(Serialize)]
struct DepartmentList<'a> {
    department: Vec<DepartmentView<'a>>,
}

#[derive(Serialize)]
struct DepartmentIdList {
    department_id: Vec<DepartmentIdView>,
}

#[derive(Serialize)]
struct DepartmentGet<'a> {
    department: DepartmentView<'a>,
}

#[derive(Serialize)]
struct UserList<T> {
    userlist: Vec<T>,
}

#[derive(Serialize)]
struct ListId<'a> {
    next_cursor: String,
    dept_user: Vec<DeptUser<'a>>,
}

#[derive(Serialize)]
struct DeptUser<'a> {
    userid: &'a str,
    department: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(7, 10_000)), Some((7, 10_000)));
        assert_eq!(decode_cursor("abc"), None);
        assert_eq!(decode_cursor("zzzzzzzzzzzzzzzz"), None);
        assert_eq!(decode_cursor("00000001000000é"), None);
    }
}

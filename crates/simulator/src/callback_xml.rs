//! The XML of WeCom callbacks: the envelope a POST carries and the `change_contact` event inside.
//!
//! Written the way WeCom writes it: strings in CDATA, numbers and `ChangeType` bare (but
//! `ParentId` in CDATA, as the docs show), lists as comma-separated strings.

use std::fmt::Write;

use crate::directory::{ExtAttr, Gender, SimDepartment, SimUser};

/// The body of a callback POST. `agent_id` is empty for callbacks that belong to no app.
pub fn envelope_xml(to_user_name: &str, encrypt: &str, agent_id: &str) -> String {
    let mut xml = String::from("<xml>");
    cdata(&mut xml, "ToUserName", to_user_name);
    cdata(&mut xml, "Encrypt", encrypt);
    cdata(&mut xml, "AgentID", agent_id);
    xml.push_str("</xml>");
    xml
}

/// How much an event says: everything (callback URLs set up before 2022-08-15), or only the ids
/// (contact-sync URLs set up since: members carry `UserID`/`Department`, departments
/// `Id`/`ParentId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    Full,
    IdsOnly,
}

/// A `change_contact` event, built from the simulator's own records.
#[derive(Debug, Clone, Copy)]
pub enum ContactEvent<'a> {
    CreateUser(&'a SimUser),
    /// `old_userid` is set when the userid changed: the event then carries it as `UserID` and
    /// the user's current id as `NewUserID`.
    UpdateUser {
        user: &'a SimUser,
        old_userid: Option<&'a str>,
    },
    DeleteUser(&'a str),
    CreateParty(&'a SimDepartment),
    UpdateParty(&'a SimDepartment),
    DeleteParty(u32),
    UpdateTag {
        tag_id: u32,
        add_users: &'a [String],
        del_users: &'a [String],
        add_parties: &'a [u32],
        del_parties: &'a [u32],
    },
}

impl ContactEvent<'_> {
    /// The plaintext XML, ready to encrypt.
    pub fn xml(&self, corp_id: &str, create_time: i64, payload: Payload) -> String {
        let mut xml = String::from("<xml>");
        cdata(&mut xml, "ToUserName", corp_id);
        cdata(&mut xml, "FromUserName", "sys");
        bare(&mut xml, "CreateTime", create_time);
        cdata(&mut xml, "MsgType", "event");
        cdata(&mut xml, "Event", "change_contact");
        let full = payload == Payload::Full;
        match *self {
            ContactEvent::CreateUser(user) => {
                bare(&mut xml, "ChangeType", "create_user");
                user_fields(&mut xml, user, None, full);
            }
            ContactEvent::UpdateUser { user, old_userid } => {
                bare(&mut xml, "ChangeType", "update_user");
                user_fields(&mut xml, user, old_userid, full);
            }
            ContactEvent::DeleteUser(userid) => {
                bare(&mut xml, "ChangeType", "delete_user");
                cdata(&mut xml, "UserID", userid);
            }
            ContactEvent::CreateParty(department) => {
                bare(&mut xml, "ChangeType", "create_party");
                party_fields(&mut xml, department, full);
            }
            ContactEvent::UpdateParty(department) => {
                bare(&mut xml, "ChangeType", "update_party");
                party_fields(&mut xml, department, full);
            }
            ContactEvent::DeleteParty(id) => {
                bare(&mut xml, "ChangeType", "delete_party");
                bare(&mut xml, "Id", id);
            }
            ContactEvent::UpdateTag {
                tag_id,
                add_users,
                del_users,
                add_parties,
                del_parties,
            } => {
                cdata(&mut xml, "ChangeType", "update_tag");
                bare(&mut xml, "TagId", tag_id);
                list(&mut xml, "AddUserItems", add_users);
                list(&mut xml, "DelUserItems", del_users);
                list(&mut xml, "AddPartyItems", add_parties);
                list(&mut xml, "DelPartyItems", del_parties);
            }
        }
        xml.push_str("</xml>");
        xml
    }
}

fn user_fields(xml: &mut String, user: &SimUser, old_userid: Option<&str>, full: bool) {
    cdata(xml, "UserID", old_userid.unwrap_or(&user.userid));
    if old_userid.is_some() {
        cdata(xml, "NewUserID", &user.userid);
    }
    list(xml, "Department", &user.department);
    if !full {
        return;
    }
    bare(xml, "MainDepartment", user.main_department);
    list(xml, "IsLeaderInDept", &user.is_leader_in_dept);
    list(xml, "DirectLeader", &user.direct_leader);
    for (name, value) in [
        ("Name", &user.name),
        ("Position", &user.position),
        ("Mobile", &user.mobile),
        ("Email", &user.email),
        ("BizMail", &user.biz_mail),
        ("Avatar", &user.avatar),
        ("Alias", &user.alias),
        ("Telephone", &user.telephone),
        ("Address", &user.address),
    ] {
        // Fields withheld from the app are absent, as they are from user/get.
        if !value.is_empty() {
            cdata(xml, name, value);
        }
    }
    // Gender is a number here, unlike the string user/get sends.
    match user.gender {
        Gender::Undefined => {}
        Gender::Male => bare(xml, "Gender", 1),
        Gender::Female => bare(xml, "Gender", 2),
    }
    bare(xml, "Status", user.status);
    ext_attr(xml, &user.extattr);
}

fn party_fields(xml: &mut String, department: &SimDepartment, full: bool) {
    bare(xml, "Id", department.id);
    if full {
        cdata(xml, "Name", &department.name);
    }
    cdata(xml, "ParentId", &department.parentid.to_string());
    if full {
        bare(xml, "Order", department.order);
    }
}

fn ext_attr(xml: &mut String, extattr: &ExtAttr) {
    if extattr.attrs.is_empty() {
        return;
    }
    xml.push_str("<ExtAttr>");
    for item in &extattr.attrs {
        xml.push_str("<Item>");
        cdata(xml, "Name", &item.name);
        bare(xml, "Type", item.kind);
        if let Some(text) = &item.text {
            xml.push_str("<Text>");
            cdata(xml, "Value", &text.value);
            xml.push_str("</Text>");
        }
        if let Some(web) = &item.web {
            xml.push_str("<Web>");
            cdata(xml, "Title", &web.title);
            cdata(xml, "Url", &web.url);
            xml.push_str("</Web>");
        }
        xml.push_str("</Item>");
    }
    xml.push_str("</ExtAttr>");
}

/// `<name><![CDATA[value]]></name>`; a `]]>` inside the value is split across two sections.
fn cdata(xml: &mut String, name: &str, value: &str) {
    let value = value.replace("]]>", "]]]]><![CDATA[>");
    let _ = write!(xml, "<{name}><![CDATA[{value}]]></{name}>");
}

/// `<name>value</name>`, for numbers and keywords that need no escaping.
fn bare(xml: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = write!(xml, "<{name}>{value}</{name}>");
}

/// A comma list in CDATA; absent when empty.
fn list<T: ToString>(xml: &mut String, name: &str, items: &[T]) {
    if !items.is_empty() {
        let joined: Vec<String> = items.iter().map(ToString::to_string).collect();
        cdata(xml, name, &joined.join(","));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::ExtAttrItem;

    fn zhangsan() -> SimUser {
        SimUser {
            userid: "zhangsan".into(),
            name: "张三 <R&D>".into(),
            department: vec![1, 2],
            is_leader_in_dept: vec![1, 0],
            direct_leader: vec!["lisi".into()],
            position: "a]]>b".into(),
            gender: Gender::Female,
            status: 1,
            main_department: 1,
            extattr: ExtAttr {
                attrs: vec![
                    ExtAttrItem::text("爱好", "旅游"),
                    ExtAttrItem::web("主页", "网站", "https://example.com/?a=1&b=2"),
                ],
            },
            ..SimUser::default()
        }
    }

    #[test]
    fn the_envelope_wraps_every_field_in_cdata() {
        assert_eq!(
            envelope_xml("wx5823bf96d3bd56c7", "abc+/=", ""),
            "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[abc+/=]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>"
        );
    }

    #[test]
    fn a_full_create_user_carries_the_attributes() {
        let xml = ContactEvent::CreateUser(&zhangsan()).xml("wwcorp", 1_700_000_000, Payload::Full);
        assert!(xml.starts_with("<xml><ToUserName><![CDATA[wwcorp]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType>create_user</ChangeType><UserID><![CDATA[zhangsan]]></UserID><Department><![CDATA[1,2]]></Department><MainDepartment>1</MainDepartment><IsLeaderInDept><![CDATA[1,0]]></IsLeaderInDept>"), "{xml}");
        assert!(xml.contains("<Name><![CDATA[张三 <R&D>]]></Name>"), "{xml}");
        assert!(
            xml.contains("<Position><![CDATA[a]]]]><![CDATA[>b]]></Position>"),
            "{xml}"
        );
        assert!(
            xml.contains("<Gender>2</Gender><Status>1</Status>"),
            "{xml}"
        );
        assert!(xml.contains("<ExtAttr><Item><Name><![CDATA[爱好]]></Name><Type>0</Type><Text><Value><![CDATA[旅游]]></Value></Text></Item><Item><Name><![CDATA[主页]]></Name><Type>1</Type><Web><Title><![CDATA[网站]]></Title><Url><![CDATA[https://example.com/?a=1&b=2]]></Url></Web></Item></ExtAttr></xml>"), "{xml}");
        assert!(
            !xml.contains("<Mobile>"),
            "withheld fields are absent: {xml}"
        );
    }

    #[test]
    fn an_ids_only_rename_carries_the_old_and_new_userid_and_departments() {
        let user = zhangsan();
        let event = ContactEvent::UpdateUser {
            user: &user,
            old_userid: Some("zs"),
        };
        assert_eq!(
            event.xml("wwcorp", 5, Payload::IdsOnly),
            "<xml><ToUserName><![CDATA[wwcorp]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>5</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType>update_user</ChangeType><UserID><![CDATA[zs]]></UserID><NewUserID><![CDATA[zhangsan]]></NewUserID><Department><![CDATA[1,2]]></Department></xml>"
        );
    }

    #[test]
    fn department_events_carry_the_id_and_parent() {
        let department = SimDepartment {
            id: 7,
            name: "研发".into(),
            name_en: None,
            parentid: 1,
            order: 4_294_967_295,
            department_leader: Vec::new(),
        };
        let ids = ContactEvent::UpdateParty(&department).xml("c", 5, Payload::IdsOnly);
        assert!(ids.ends_with("<ChangeType>update_party</ChangeType><Id>7</Id><ParentId><![CDATA[1]]></ParentId></xml>"), "{ids}");
        let full = ContactEvent::CreateParty(&department).xml("c", 5, Payload::Full);
        assert!(full.ends_with("<ChangeType>create_party</ChangeType><Id>7</Id><Name><![CDATA[研发]]></Name><ParentId><![CDATA[1]]></ParentId><Order>4294967295</Order></xml>"), "{full}");
        let deleted = ContactEvent::DeleteParty(7).xml("c", 5, Payload::Full);
        assert!(
            deleted.ends_with("<ChangeType>delete_party</ChangeType><Id>7</Id></xml>"),
            "{deleted}"
        );
    }

    #[test]
    fn a_tag_event_lists_its_users_and_departments() {
        let users = ["a".to_owned(), "b".to_owned()];
        let event = ContactEvent::UpdateTag {
            tag_id: 3,
            add_users: &users,
            del_users: &[],
            add_parties: &[],
            del_parties: &[4, 5],
        };
        assert!(event.xml("c", 5, Payload::IdsOnly).ends_with("<ChangeType><![CDATA[update_tag]]></ChangeType><TagId>3</TagId><AddUserItems><![CDATA[a,b]]></AddUserItems><DelPartyItems><![CDATA[4,5]]></DelPartyItems></xml>"));
    }
}

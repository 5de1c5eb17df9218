use orgsync_simulator::{ContactEvent, ExtAttr, ExtAttrItem, Payload, SimDepartment, SimUser};

use super::*;

fn event(xml: &str) -> Result<Event, XmlError> {
    parse_event(xml.as_bytes())
}

fn change(xml: &str) -> ContactChange {
    match event(xml).unwrap().kind {
        EventKind::ContactChange(change) => change,
        other => panic!("not a contact change: {other:?}"),
    }
}

/// A change_contact event with `fields` after the common ones.
fn contact(fields: &str) -> String {
    format!("<xml><ToUserName><![CDATA[wwcorp]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>{fields}</xml>")
}

#[test]
fn the_envelope_of_vector_a2() {
    let body = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><Encrypt><![CDATA[RypEvHKD8QQKFhvQ6Qle+/==]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>";
    assert_eq!(
        parse_envelope(body.as_bytes()).unwrap(),
        Envelope {
            encrypt: "RypEvHKD8QQKFhvQ6Qle+/==".into(),
            to_user_name: Some("wx5823bf96d3bd56c7".into()),
            agent_id: Some("218".into()),
        }
    );
}

#[test]
fn an_envelope_with_newlines_an_empty_agent_id_and_a_prolog() {
    let body = "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- sent by WeCom -->\n<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n<Encrypt>\n  <![CDATA[Kl7k+/=]]>\n</Encrypt>\n<AgentID><![CDATA[]]></AgentID>\n</xml>\n";
    let envelope = parse_envelope(body.as_bytes()).unwrap();
    assert_eq!(envelope.encrypt, "Kl7k+/=");
    assert_eq!(envelope.agent_id, None);
    assert_eq!(
        parse_envelope(b"<xml><Encrypt>abc</Encrypt></xml>")
            .unwrap()
            .to_user_name,
        None
    );
}

#[test]
fn an_envelope_without_encrypt_is_refused() {
    for body in [
        "<xml><ToUserName>c</ToUserName></xml>",
        "<xml><Encrypt><![CDATA[]]></Encrypt></xml>",
        "<xml/>",
    ] {
        assert_eq!(
            parse_envelope(body.as_bytes()),
            Err(XmlError::MissingField("Encrypt")),
            "{body}"
        );
    }
}

#[test]
fn vector_e_is_a_rename() {
    let plaintext = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType>update_user</ChangeType><UserID><![CDATA[zhangsan]]></UserID><NewUserID><![CDATA[zhangsan2]]></NewUserID><Department><![CDATA[1,2]]></Department><MainDepartment>1</MainDepartment></xml>";
    assert_eq!(
        event(plaintext).unwrap(),
        Event {
            to_user_name: Some("wx5823bf96d3bd56c7".into()),
            from_user_name: Some("sys".into()),
            create_time: Some(1_700_000_000),
            kind: EventKind::ContactChange(ContactChange::UpdateUser {
                userid: "zhangsan".into(),
                new_userid: Some("zhangsan2".into()),
                departments: vec![1, 2],
            }),
        }
    );
}

#[test]
fn a_text_message_is_another_kind() {
    // Vector A2's plaintext.
    let plaintext = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>";
    let parsed = event(plaintext).unwrap();
    assert_eq!(parsed.create_time, Some(1_409_659_813));
    assert_eq!(
        parsed.kind,
        EventKind::Other {
            msg_type: Some("text".into()),
            event: None
        }
    );
    let other_event = "<xml><MsgType>event</MsgType><Event>enter_agent</Event></xml>";
    assert!(
        matches!(event(other_event).unwrap().kind, EventKind::Other { event: Some(e), .. } if e == "enter_agent")
    );
}

#[test]
fn values_with_and_without_cdata_read_the_same() {
    let bare = contact("<ChangeType>update_party</ChangeType><Id>2</Id><ParentId>1</ParentId>");
    let wrapped = contact("<ChangeType><![CDATA[update_party]]></ChangeType><Id><![CDATA[2]]></Id><ParentId><![CDATA[1]]></ParentId>");
    let mixed = contact(
        "<ChangeType>update_party</ChangeType><Id>2</Id><ParentId><![CDATA[1]]></ParentId>",
    );
    for xml in [bare, wrapped, mixed] {
        assert_eq!(
            change(&xml),
            ContactChange::UpdateParty {
                id: 2,
                parent_id: Some(1)
            }
        );
    }
}

#[test]
fn comma_lists_tolerate_spaces_and_empty_items() {
    let xml = contact("<ChangeType>create_user</ChangeType><UserID>u</UserID><Department><![CDATA[ 1, 2 ,,3,]]></Department><IsLeaderInDept><![CDATA[1,0,0]]></IsLeaderInDept>");
    assert_eq!(
        change(&xml),
        ContactChange::CreateUser {
            userid: "u".into(),
            departments: vec![1, 2, 3],
        }
    );
    let tag = contact("<ChangeType><![CDATA[update_tag]]></ChangeType><TagId>1</TagId><AddUserItems><![CDATA[zhangsan,lisi]]></AddUserItems><DelUserItems><![CDATA[wangwu]]></DelUserItems><AddPartyItems><![CDATA[4,5]]></AddPartyItems><DelPartyItems><![CDATA[]]></DelPartyItems>");
    assert_eq!(
        change(&tag),
        ContactChange::UpdateTag {
            tag_id: 1,
            add_users: vec!["zhangsan".into(), "lisi".into()],
            del_users: vec!["wangwu".into()],
            add_parties: vec![4, 5],
            del_parties: vec![],
        }
    );
}

#[test]
fn entities_and_split_cdata_are_decoded() {
    let xml = contact("<ChangeType>delete_user</ChangeType><UserID>a&lt;b&gt;&amp;&quot;&apos;&#20013;&#x6587; <![CDATA[x]]]]><![CDATA[>y &amp;]]></UserID>");
    assert_eq!(
        change(&xml),
        ContactChange::DeleteUser {
            userid: "a<b>&\"'中文 x]]>y &amp;".into()
        }
    );
}

#[test]
fn nested_fields_are_skipped_and_empty_fields_are_absent() {
    let xml = contact("<ChangeType>update_user</ChangeType><UserID>u</UserID><NewUserID/><ExtAttr><Item><Name><![CDATA[爱好]]></Name><Type>0</Type><Text><Value><![CDATA[旅游]]></Value></Text></Item><Item><Name>主页</Name><Type>1</Type><Web><Title>网站</Title><Url>https://e.com/?a=1&amp;b=2</Url></Web></Item></ExtAttr><!-- a comment --><Department>3</Department>");
    assert_eq!(
        change(&xml),
        ContactChange::UpdateUser {
            userid: "u".into(),
            new_userid: None,
            departments: vec![3],
        }
    );
}

#[test]
fn every_change_type_reads_its_ids() {
    let cases = [
        ("<ChangeType>delete_user</ChangeType><UserID>u</UserID>", ContactChange::DeleteUser { userid: "u".into() }),
        ("<ChangeType>create_party</ChangeType><Id>5</Id><Name>n</Name><ParentId>1</ParentId><Order>4294967295</Order>", ContactChange::CreateParty { id: 5, parent_id: Some(1) }),
        ("<ChangeType>update_party</ChangeType><Id>5</Id><Name>n</Name>", ContactChange::UpdateParty { id: 5, parent_id: None }),
        ("<ChangeType>delete_party</ChangeType><Id>4294967295</Id>", ContactChange::DeleteParty { id: 4_294_967_295 }),
        ("<ChangeType>create_user</ChangeType><UserID>u</UserID>", ContactChange::CreateUser { userid: "u".into(), departments: vec![] }),
        ("<ChangeType>some_future_change</ChangeType>", ContactChange::Other { change_type: "some_future_change".into() }),
    ];
    for (fields, expected) in cases {
        assert_eq!(change(&contact(fields)), expected, "{fields}");
    }
}

#[test]
fn a_change_without_its_ids_is_refused() {
    let cases = [
        ("<UserID>u</UserID>", XmlError::MissingField("ChangeType")),
        (
            "<ChangeType>delete_user</ChangeType>",
            XmlError::MissingField("UserID"),
        ),
        (
            "<ChangeType>update_user</ChangeType><UserID> </UserID>",
            XmlError::MissingField("UserID"),
        ),
        (
            "<ChangeType>delete_party</ChangeType>",
            XmlError::MissingField("Id"),
        ),
        (
            "<ChangeType>update_tag</ChangeType>",
            XmlError::MissingField("TagId"),
        ),
        (
            "<ChangeType>delete_party</ChangeType><Id>-1</Id>",
            XmlError::BadValue("Id"),
        ),
        (
            "<ChangeType>delete_party</ChangeType><Id>4294967296</Id>",
            XmlError::BadValue("Id"),
        ),
        (
            "<ChangeType>create_party</ChangeType><Id>2</Id><ParentId>x</ParentId>",
            XmlError::BadValue("ParentId"),
        ),
        (
            "<ChangeType>create_user</ChangeType><UserID>u</UserID><Department>1,x</Department>",
            XmlError::BadValue("Department"),
        ),
        (
            "<ChangeType>delete_user</ChangeType><UserID><b>u</b></UserID>",
            XmlError::BadValue("UserID"),
        ),
    ];
    for (fields, expected) in cases {
        assert_eq!(event(&contact(fields)), Err(expected), "{fields}");
    }
    assert_eq!(
        event("<xml><CreateTime>soon</CreateTime></xml>"),
        Err(XmlError::BadValue("CreateTime"))
    );
}

#[test]
fn malformed_documents_are_refused() {
    let malformed = [
        "<xml><UserID>u</UserId></xml>",
        "<xml><UserID>u</UserID>",
        "<xml><UserID>u",
        "<xml><UserID><![CDATA[u</UserID></xml>",
        "<xml><UserID>u</UserID><UserID>v</UserID></xml>",
        "<xml>text<UserID>u</UserID></xml>",
        "<xml><UserID>u</UserID></xml><xml/>",
        "<xml></xml>trailing",
        "<!DOCTYPE xml [<!ENTITY e \"boom\">]><xml><UserID>&e;</UserID></xml>",
        "<xml><UserID>&e;</UserID></xml>",
        "<xml><UserID>&nbsp;</UserID></xml>",
        "<xml><UserID>&#0;</UserID></xml>",
        "<xml><UserID>&#xD800;</UserID></xml>",
        "<xml><UserID>&#+65;</UserID></xml>",
        "<xml><UserID>a & b</UserID></xml>",
        "<xml><UserID>&#00000000065;</UserID></xml>",
        "<xml><!-- unclosed </xml>",
        "<xml><UserID attr=\"></UserID></xml>",
        "<xml><UserID <b>u</b></UserID></xml>",
        "<xml><1UserID>u</1UserID></xml>x",
        "<xml><></></xml>",
        "<xml><?pi?></xml>",
        "<xml><UserID><!DOCTYPE></UserID></xml>",
    ];
    for xml in malformed {
        assert!(
            matches!(event(xml), Err(XmlError::Malformed { .. })),
            "{xml}: {:?}",
            event(xml)
        );
    }
}

#[test]
fn documents_without_an_xml_root_are_refused() {
    for xml in [
        "",
        "   ",
        "hello",
        "<root><UserID>u</UserID></root>",
        "<xmlx></xmlx>",
        "<!-- only a comment -->",
    ] {
        assert_eq!(event(xml), Err(XmlError::MissingRoot), "{xml:?}");
    }
}

#[test]
fn oversized_non_utf8_deep_and_wide_documents_are_refused() {
    let big = format!(
        "<xml><Encrypt>{}</Encrypt></xml>",
        "A".repeat(MAX_CALLBACK_BYTES)
    );
    assert_eq!(parse_envelope(big.as_bytes()), Err(XmlError::TooLarge));
    assert_eq!(
        parse_event(b"<xml><UserID>\xff</UserID></xml>"),
        Err(XmlError::NotUtf8)
    );
    let nest = |levels: usize| {
        format!(
            "<xml><A>{}{}</A></xml>",
            "<B>".repeat(levels),
            "</B>".repeat(levels)
        )
    };
    assert!(event(&nest(MAX_DEPTH - 1)).is_ok());
    assert_eq!(event(&nest(MAX_DEPTH)), Err(XmlError::TooDeep));
    assert_eq!(event(&nest(30_000)), Err(XmlError::TooDeep));
    let fields = |n: usize| {
        format!(
            "<xml>{}</xml>",
            (0..n).map(|i| format!("<F{i}/>")).collect::<String>()
        )
    };
    assert!(event(&fields(MAX_FIELDS)).is_ok());
    assert_eq!(event(&fields(MAX_FIELDS + 1)), Err(XmlError::TooManyFields));
}

#[test]
fn attributes_and_whitespace_in_tags_are_tolerated() {
    let xml =
        contact("<ChangeType type=\"a>b\" >delete_user</ChangeType ><UserID x='1'/><UserID2/>");
    assert_eq!(event(&xml), Err(XmlError::MissingField("UserID")));
    let xml =
        contact("<ChangeType type=\"a>b\" >delete_user</ChangeType ><UserID x='/'>u</UserID>");
    assert_eq!(
        change(&xml),
        ContactChange::DeleteUser { userid: "u".into() }
    );
}

#[test]
fn errors_name_fields_but_not_values() {
    let error = event(&contact(
        "<ChangeType>delete_party</ChangeType><Id>secret-value</Id>",
    ))
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the callback's Id field has an invalid value"
    );
}

fn zhangsan() -> SimUser {
    SimUser {
        userid: "zhangsan".into(),
        name: "张三 <R&D> ]]>".into(),
        department: vec![1, 2],
        is_leader_in_dept: vec![1, 0],
        direct_leader: vec!["lisi".into()],
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
fn the_simulators_events_read_back_in_both_payloads() {
    let user = zhangsan();
    let department = SimDepartment {
        id: 7,
        name: "研发".into(),
        name_en: None,
        parentid: 1,
        order: 4_294_967_295,
        department_leader: Vec::new(),
    };
    let users = ["a".to_owned()];
    let cases = [
        (
            ContactEvent::CreateUser(&user),
            ContactChange::CreateUser {
                userid: "zhangsan".into(),
                departments: vec![1, 2],
            },
        ),
        (
            ContactEvent::UpdateUser {
                user: &user,
                old_userid: Some("zs"),
            },
            ContactChange::UpdateUser {
                userid: "zs".into(),
                new_userid: Some("zhangsan".into()),
                departments: vec![1, 2],
            },
        ),
        (
            ContactEvent::UpdateUser {
                user: &user,
                old_userid: None,
            },
            ContactChange::UpdateUser {
                userid: "zhangsan".into(),
                new_userid: None,
                departments: vec![1, 2],
            },
        ),
        (
            ContactEvent::DeleteUser("zhangsan"),
            ContactChange::DeleteUser {
                userid: "zhangsan".into(),
            },
        ),
        (
            ContactEvent::CreateParty(&department),
            ContactChange::CreateParty {
                id: 7,
                parent_id: Some(1),
            },
        ),
        (
            ContactEvent::UpdateParty(&department),
            ContactChange::UpdateParty {
                id: 7,
                parent_id: Some(1),
            },
        ),
        (
            ContactEvent::DeleteParty(7),
            ContactChange::DeleteParty { id: 7 },
        ),
        (
            ContactEvent::UpdateTag {
                tag_id: 3,
                add_users: &users,
                del_users: &[],
                add_parties: &[],
                del_parties: &[4, 5],
            },
            ContactChange::UpdateTag {
                tag_id: 3,
                add_users: vec!["a".into()],
                del_users: vec![],
                add_parties: vec![],
                del_parties: vec![4, 5],
            },
        ),
    ];
    for (sim, expected) in cases {
        for payload in [Payload::Full, Payload::IdsOnly] {
            let xml = sim.xml("wwcorp", 1_700_000_000, payload);
            let parsed = event(&xml).unwrap();
            assert_eq!(parsed.to_user_name.as_deref(), Some("wwcorp"));
            assert_eq!(parsed.from_user_name.as_deref(), Some("sys"));
            assert_eq!(parsed.create_time, Some(1_700_000_000));
            assert_eq!(
                parsed.kind,
                EventKind::ContactChange(expected.clone()),
                "{xml}"
            );
        }
    }
}

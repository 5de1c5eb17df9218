//! The matching rules, one table row per situation. Every row is also re-planned after its
//! changes are applied, which must change nothing: a pass is idempotent.

use super::*;
use Method::{Manual, Name, Phone};
use Reason::{HostUserRemoved, MemberLeft, NameChanged, PhoneChanged, PhoneConflict};

/// (id or userid, raw name, raw mobile)
type Person = (&'static str, Option<&'static str>, Option<&'static str>);

const A: &str = "13800138000";
const A_FORMATTED: &str = "+86 138-0013-8000";
const B: &str = "13911220876";
const C: &str = "15010873321";

fn state(
    members: &[Person],
    hosts: &[Person],
    links: &[(&str, &str, Method)],
    held: &[&str],
) -> State {
    State {
        members: members
            .iter()
            .map(|&(userid, name, mobile)| {
                (
                    userid.to_lowercase(),
                    MemberFacts::new(userid, name, mobile),
                )
            })
            .collect(),
        host_users: hosts
            .iter()
            .map(|&(id, name, mobile)| (id.to_owned(), host_facts(name, mobile)))
            .collect(),
        links: links
            .iter()
            .map(|&(host, userid, method)| {
                (
                    host.to_owned(),
                    Link {
                        userid_key: userid.to_lowercase(),
                        userid: userid.to_owned(),
                        method,
                    },
                )
            })
            .collect(),
        held: held.iter().map(|h| (*h).to_owned()).collect(),
    }
}

fn created(plan: &Plan) -> Vec<(String, String, Method)> {
    plan.created
        .iter()
        .map(|c| {
            (
                c.host_user_id.clone(),
                c.link.userid_key.clone(),
                c.link.method,
            )
        })
        .collect()
}

fn removed(plan: &Plan) -> Vec<(String, String, Reason)> {
    plan.removed
        .iter()
        .map(|r| (r.host_user_id.clone(), r.link.userid_key.clone(), r.reason))
        .collect()
}

/// What the store does with a plan.
fn apply(state: &mut State, plan: &Plan) {
    for removed in &plan.removed {
        state.links.remove(&removed.host_user_id);
    }
    for created in &plan.created {
        state
            .links
            .insert(created.host_user_id.clone(), created.link.clone());
    }
    for removed in &plan.removed {
        if removed.reason == MemberLeft {
            state.held.insert(removed.host_user_id.clone());
        }
    }
    for (host, userid) in &plan.respelled {
        if let Some(link) = state.links.get_mut(host) {
            link.userid = userid.clone();
        }
    }
}

fn owned<T: Copy>(rows: &[(&str, &str, T)]) -> Vec<(String, String, T)> {
    rows.iter()
        .map(|&(a, b, t)| (a.to_owned(), b.to_owned(), t))
        .collect()
}

struct Case {
    what: &'static str,
    members: &'static [Person],
    hosts: &'static [Person],
    links: &'static [(&'static str, &'static str, Method)],
    held: &'static [&'static str],
    created: &'static [(&'static str, &'static str, Method)],
    removed: &'static [(&'static str, &'static str, Reason)],
}

const CASES: &[Case] = &[
    // Phone.
    Case {
        what: "phone: the same mobile written differently",
        members: &[("zhangsan", Some("张三"), Some(A))],
        hosts: &[("1", Some("Zhang San"), Some(A_FORMATTED))],
        links: &[],
        held: &[],
        created: &[("1", "zhangsan", Phone)],
        removed: &[],
    },
    Case {
        what: "phone: two members share the mobile, nobody is linked",
        members: &[
            ("zhangsan", Some("张三"), Some(A)),
            ("lisi", Some("李四"), Some(A)),
        ],
        hosts: &[("1", None, Some(A))],
        links: &[],
        held: &[],
        created: &[],
        removed: &[],
    },
    Case {
        what: "phone: two host users share the mobile, nobody is linked",
        members: &[("zhangsan", None, Some(A))],
        hosts: &[("1", None, Some(A)), ("2", None, Some(A_FORMATTED))],
        links: &[],
        held: &[],
        created: &[],
        removed: &[],
    },
    Case {
        what: "phone: shared with a linked member still blocks the rest",
        members: &[
            ("zhangsan", Some("张三"), Some(A)),
            ("lisi", Some("李四"), Some(A)),
        ],
        hosts: &[("1", Some("张三"), None), ("2", None, Some(A))],
        links: &[("1", "zhangsan", Manual)],
        held: &[],
        created: &[],
        removed: &[],
    },
    Case {
        what: "phone: a landline is not used, the name decides",
        members: &[("zhangsan", Some("张三"), Some("010-62550000"))],
        hosts: &[("1", Some("张三"), Some("010-62550000"))],
        links: &[],
        held: &[],
        created: &[("1", "zhangsan", Name)],
        removed: &[],
    },
    Case {
        what: "phone: first, before names",
        members: &[
            ("zhangsan", Some("张三"), None),
            ("lisi", Some("李四"), Some(A)),
        ],
        hosts: &[("1", Some("张三"), Some(A))],
        links: &[],
        held: &[],
        created: &[("1", "lisi", Phone)],
        removed: &[],
    },
    // Name.
    Case {
        what: "name: unique on both sides",
        members: &[
            ("wangfang", Some("王芳"), None),
            ("lina", Some("李娜"), None),
        ],
        hosts: &[("1", Some(" 王芳\u{3000}"), None)],
        links: &[],
        held: &[],
        created: &[("1", "wangfang", Name)],
        removed: &[],
    },
    Case {
        what: "name: NFKC folds full-width letters",
        members: &[("wf", Some("Wang Fang"), None)],
        hosts: &[("1", Some("Ｗａｎｇ Ｆａｎｇ"), None)],
        links: &[],
        held: &[],
        created: &[("1", "wf", Name)],
        removed: &[],
    },
    Case {
        what: "name: case is not folded",
        members: &[("wf", Some("Wang Fang"), None)],
        hosts: &[("1", Some("wang fang"), None)],
        links: &[],
        held: &[],
        created: &[],
        removed: &[],
    },
    Case {
        what: "name: two members of that name, nobody is linked",
        members: &[
            ("wangfang", Some("王芳"), None),
            ("wangfang2", Some("王芳"), None),
        ],
        hosts: &[("1", Some("王芳"), None)],
        links: &[],
        held: &[],
        created: &[],
        removed: &[],
    },
    Case {
        what: "name: two host users of that name, nobody is linked",
        members: &[("wangfang", Some("王芳"), None)],
        hosts: &[("1", Some("王芳"), None), ("2", Some("王芳"), None)],
        links: &[],
        held: &[],
        created: &[],
        removed: &[],
    },
    Case {
        what: "name: refused when both mobiles are known and differ",
        members: &[("wangfang", Some("王芳"), Some(A))],
        hosts: &[("1", Some("王芳"), Some(B))],
        links: &[],
        held: &[],
        created: &[],
        removed: &[],
    },
    Case {
        what: "name: refused when the host user's mobile is another member's",
        members: &[
            ("wangfang", Some("王芳"), None),
            ("lisi", Some("李四"), Some(A)),
            ("lisi2", Some("李四"), Some(A)),
        ],
        hosts: &[("1", Some("王芳"), Some(A))],
        links: &[],
        held: &[],
        created: &[],
        removed: &[],
    },
    Case {
        what: "name: refused when the member's mobile is another host user's",
        members: &[("wangfang", Some("王芳"), Some(A))],
        hosts: &[
            ("1", Some("王芳"), None),
            ("2", Some("李四"), Some(A)),
            ("3", Some("赵六"), Some(A)),
        ],
        links: &[],
        held: &[],
        created: &[],
        removed: &[],
    },
    Case {
        what: "name: agreeing mobiles do not stand in the way",
        members: &[
            ("wangfang", Some("王芳"), Some(A)),
            ("other", Some("其他"), Some(A)),
        ],
        hosts: &[("1", Some("王芳"), Some(A))],
        links: &[],
        held: &[],
        created: &[("1", "wangfang", Name)],
        removed: &[],
    },
    Case {
        what: "name: unique among the unlinked once a phone link took one pair",
        members: &[
            ("wangfang", Some("王芳"), Some(A)),
            ("wangfang2", Some("王芳"), None),
        ],
        hosts: &[("1", Some("王芳"), Some(A)), ("2", Some("王芳"), None)],
        links: &[],
        held: &[],
        created: &[("1", "wangfang", Phone), ("2", "wangfang2", Name)],
        removed: &[],
    },
    Case {
        what: "name: unique among the unlinked once a manual link took one pair",
        members: &[
            ("wangfang", Some("王芳"), None),
            ("wangfang2", Some("王芳"), None),
        ],
        hosts: &[("1", Some("王芳"), None), ("2", Some("王芳"), None)],
        links: &[("1", "wangfang2", Manual)],
        held: &[],
        created: &[("2", "wangfang", Name)],
        removed: &[],
    },
    Case {
        what: "nothing to go on: no name, no usable mobile",
        members: &[("zhangsan", None, Some("not a phone"))],
        hosts: &[("1", None, Some("not a phone"))],
        links: &[],
        held: &[],
        created: &[],
        removed: &[],
    },
    // Manual links.
    Case {
        what: "manual: kept against the evidence, and its ends are taken",
        members: &[
            ("zhangsan", Some("张三"), Some(A)),
            ("lisi", Some("李四"), Some(B)),
        ],
        hosts: &[("1", Some("李四"), Some(B)), ("2", Some("张三"), Some(A))],
        links: &[("1", "zhangsan", Manual)],
        held: &[],
        created: &[],
        removed: &[],
    },
    Case {
        what: "manual: survives its host user being removed",
        members: &[("zhangsan", Some("张三"), Some(A))],
        hosts: &[],
        links: &[("1", "zhangsan", Manual)],
        held: &[],
        created: &[],
        removed: &[],
    },
    Case {
        what: "manual: goes when the member leaves, and the host user is held",
        members: &[("lisi", Some("张三"), Some(A))],
        hosts: &[("1", Some("张三"), Some(A))],
        links: &[("1", "zhangsan", Manual)],
        held: &[],
        created: &[],
        removed: &[("1", "zhangsan", MemberLeft)],
    },
    // Held host users.
    Case {
        what: "held: never linked by phone or by name",
        members: &[
            ("zhangsan", Some("张三"), Some(A)),
            ("lisi", Some("李四"), None),
        ],
        hosts: &[("1", Some("张三"), Some(A)), ("2", Some("李四"), None)],
        links: &[],
        held: &["1", "2"],
        created: &[],
        removed: &[],
    },
    Case {
        what: "held: still makes a name ambiguous",
        members: &[("wangfang", Some("王芳"), None)],
        hosts: &[("1", Some("王芳"), None), ("2", Some("王芳"), None)],
        links: &[],
        held: &["1"],
        created: &[],
        removed: &[],
    },
    Case {
        what: "held: still makes a mobile ambiguous",
        members: &[("zhangsan", None, Some(A))],
        hosts: &[("1", None, Some(A)), ("2", None, Some(A))],
        links: &[],
        held: &["1"],
        created: &[],
        removed: &[],
    },
    // Removals.
    Case {
        what: "removal: the member left, the host user is held",
        members: &[("wangfang2", Some("王芳"), None)],
        hosts: &[("1", Some("王芳"), None)],
        links: &[("1", "wangfang", Name)],
        held: &[],
        created: &[],
        removed: &[("1", "wangfang", MemberLeft)],
    },
    Case {
        what: "removal: the host user was removed",
        members: &[("zhangsan", Some("张三"), Some(A))],
        hosts: &[],
        links: &[("1", "zhangsan", Phone)],
        held: &[],
        created: &[],
        removed: &[("1", "zhangsan", HostUserRemoved)],
    },
    Case {
        what: "removal: the phone changed, and the new one links elsewhere",
        members: &[
            ("zhangsan", Some("张三"), Some(B)),
            ("lisi", Some("李四"), Some(A)),
        ],
        hosts: &[("1", Some("Someone"), Some(A))],
        links: &[("1", "zhangsan", Phone)],
        held: &[],
        created: &[("1", "lisi", Phone)],
        removed: &[("1", "zhangsan", PhoneChanged)],
    },
    Case {
        what: "removal: the host user's mobile was cleared",
        members: &[("zhangsan", None, Some(A))],
        hosts: &[("1", None, None)],
        links: &[("1", "zhangsan", Phone)],
        held: &[],
        created: &[],
        removed: &[("1", "zhangsan", PhoneChanged)],
    },
    Case {
        what: "removal: the name changed",
        members: &[("wangfang", Some("王芳芳"), None)],
        hosts: &[("1", Some("王芳"), None)],
        links: &[("1", "wangfang", Name)],
        held: &[],
        created: &[],
        removed: &[("1", "wangfang", NameChanged)],
    },
    Case {
        what: "removal: a name link whose mobiles became known and differ",
        members: &[("wangfang", Some("王芳"), Some(A))],
        hosts: &[("1", Some("王芳"), Some(B))],
        links: &[("1", "wangfang", Name)],
        held: &[],
        created: &[],
        removed: &[("1", "wangfang", PhoneConflict)],
    },
    // Stability.
    Case {
        what: "stability: a name link stays when a member of the same name joins",
        members: &[
            ("wangfang", Some("王芳"), None),
            ("wangfang2", Some("王芳"), None),
        ],
        hosts: &[("1", Some("王芳"), None)],
        links: &[("1", "wangfang", Name)],
        held: &[],
        created: &[],
        removed: &[],
    },
    Case {
        what: "stability: a phone link stays when a host user with the same mobile arrives",
        members: &[("zhangsan", Some("张三"), Some(A))],
        hosts: &[("1", Some("张三"), Some(A)), ("2", Some("Z"), Some(A))],
        links: &[("1", "zhangsan", Phone)],
        held: &[],
        created: &[],
        removed: &[],
    },
    Case {
        what: "stability: a name link stays when the other side's phones are taken by others",
        members: &[
            ("wangfang", Some("王芳"), None),
            ("lisi", Some("李四"), Some(C)),
        ],
        hosts: &[("1", Some("王芳"), Some(C))],
        links: &[("1", "wangfang", Name)],
        held: &[],
        created: &[],
        removed: &[],
    },
];

#[test]
fn each_rule_does_what_the_table_says_and_a_second_pass_changes_nothing() {
    for case in CASES {
        let mut state = state(case.members, case.hosts, case.links, case.held);
        let plan = plan(&state);
        assert_eq!(
            created(&plan),
            owned(case.created),
            "created: {}",
            case.what
        );
        assert_eq!(
            removed(&plan),
            owned(case.removed),
            "removed: {}",
            case.what
        );
        apply(&mut state, &plan);
        let again = super::plan(&state);
        assert!(
            again.is_empty(),
            "second pass changed something: {}",
            case.what
        );
    }
}

#[test]
fn ambiguity_is_reported_with_the_candidates_on_both_sides() {
    let state = state(
        &[
            ("wangfang", Some("王芳"), None),
            ("wangfang2", Some("王芳"), None),
            ("zhangsan", Some("张三"), Some(A)),
            ("lisi", Some("李四"), Some(A)),
            ("zhaoliu", Some("赵六"), None),
        ],
        &[
            ("1", Some("王芳"), None),
            ("2", Some("Z"), Some(A)),
            ("3", Some("钱七"), None),
        ],
        &[],
        &[],
    );
    let plan = plan(&state);
    assert!(plan.created.is_empty());
    let assessment = &plan.assessment;
    assert_eq!(
        assessment.ambiguous_names,
        [Group {
            value: "王芳".into(),
            members: vec!["wangfang".into(), "wangfang2".into()],
            host_users: vec!["1".into()],
        }]
    );
    assert_eq!(
        assessment.ambiguous_phones,
        [Group {
            value: "+8613800138000".into(),
            members: vec!["lisi".into(), "zhangsan".into()],
            host_users: vec!["2".into()],
        }]
    );
    assert_eq!(
        assessment.host_users,
        Counts {
            linked: 0,
            ambiguous: 2,
            unmatched: 1
        }
    );
    assert_eq!(
        assessment.members,
        Counts {
            linked: 0,
            ambiguous: 4,
            unmatched: 1
        }
    );
}

#[test]
fn refused_name_matches_are_reported_as_conflicts() {
    let state = state(
        &[("wangfang", Some("王芳"), Some(A))],
        &[("1", Some("王芳"), Some(B))],
        &[],
        &[],
    );
    let plan = plan(&state);
    assert_eq!(
        plan.assessment.conflicts,
        [Conflict {
            host_user_id: "1".into(),
            userid_key: "wangfang".into()
        }]
    );
    assert_eq!(plan.assessment.host_users.unmatched, 1);
}

#[test]
fn a_newcomer_with_a_linked_name_waits_for_a_partner_of_its_own() {
    // 王芳 was linked when she was the only one; a second 王芳 joins WeCom.
    let mut state = state(
        &[
            ("wangfang", Some("王芳"), None),
            ("wangfang2", Some("王芳"), None),
        ],
        &[("1", Some("王芳"), None)],
        &[("1", "wangfang", Name)],
        &[],
    );
    let plan1 = plan(&state);
    assert!(plan1.is_empty());
    assert_eq!(plan1.assessment.members.unmatched, 1);
    assert!(plan1.assessment.ambiguous_names.is_empty());

    // Then a second 王芳 host user arrives: the two unlinked ones are each other's only
    // candidates, exactly as if the first pair had been linked by hand.
    state
        .host_users
        .insert("2".into(), host_facts(Some("王芳"), None));
    let plan2 = plan(&state);
    assert_eq!(created(&plan2), owned(&[("2", "wangfang2", Name)]));
    assert!(plan2.removed.is_empty());
}

#[test]
fn a_host_user_whose_member_left_is_not_handed_to_the_next_hire_of_that_name() {
    let mut state = state(
        &[("wangfang", Some("王芳"), None)],
        &[("1", Some("王芳"), None)],
        &[],
        &[],
    );
    let first = plan(&state);
    apply(&mut state, &first);
    assert_eq!(state.links.len(), 1);

    state.members.clear();
    let left = plan(&state);
    assert_eq!(removed(&left), owned(&[("1", "wangfang", MemberLeft)]));
    apply(&mut state, &left);
    assert!(state.held.contains("1"));

    state.members.insert(
        "wangfang.new".into(),
        MemberFacts::new("WangFang.New", Some("王芳"), None),
    );
    let hired = plan(&state);
    assert!(hired.created.is_empty());
    assert_eq!(hired.assessment.host_users.unmatched, 1);
}

#[test]
fn a_renamed_userid_is_followed_by_its_link() {
    let state = state(
        &[("ZhangSan", Some("张三"), Some(A))],
        &[("1", None, Some(A))],
        &[("1", "zhangsan", Phone)],
        &[],
    );
    let plan = plan(&state);
    assert_eq!(plan.respelled, [("1".to_owned(), "ZhangSan".to_owned())]);
    assert!(plan.removed.is_empty() && plan.created.is_empty());
}

#[test]
fn plans_are_ordered_by_host_user_id_whatever_the_hash_order() {
    let mut state = State::default();
    for i in 0..50 {
        let mobile = format!("1380013{i:04}");
        state.members.insert(
            format!("u{i:02}"),
            MemberFacts::new(&format!("u{i:02}"), None, Some(&mobile)),
        );
        state
            .host_users
            .insert(format!("{i:02}"), host_facts(None, Some(&mobile)));
    }
    let plan = plan(&state);
    let ids: Vec<&str> = plan
        .created
        .iter()
        .map(|c| c.host_user_id.as_str())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids.len(), 50);
    assert_eq!(ids, sorted);
}

/// A state in which WeCom withholds mobiles: members have names only; `emails` are what lookups
/// said (host id's email → member), `hosts` are (id, name, mobile, email).
fn withheld(
    members: &[&str],
    hosts: &[(&str, Option<&str>, Option<&str>)],
    email_answers: &[(&str, &str)],
) -> State {
    let mut state = State {
        members: members
            .iter()
            .map(|&userid| (userid.to_lowercase(), MemberFacts::new(userid, None, None)))
            .collect(),
        host_users: hosts
            .iter()
            .map(|&(id, mobile, email)| {
                let user = crate::model::host_user::tests::user(id, None, mobile, email);
                (id.to_owned(), facts_of(&user))
            })
            .collect(),
        ..State::default()
    };
    for &(email, userid) in email_answers {
        if let Some(member) = state.members.get_mut(&userid.to_lowercase()) {
            member.email = email_key(email);
        }
    }
    state
}

#[test]
fn an_email_lookup_links_one_to_one_and_a_shared_email_links_nobody() {
    let state = withheld(
        &["alice", "bob"],
        &[
            ("h1", None, Some(" Alice@Corp.example ")),
            ("h2", None, Some("bob@corp.example")),
            ("h3", None, Some("BOB@corp.example")),
        ],
        &[("alice@corp.example", "alice"), ("bob@corp.example", "bob")],
    );
    let plan = plan(&state);
    assert_eq!(
        created(&plan),
        [("h1".into(), "alice".into(), Method::Email)]
    );
    assert_eq!(plan.assessment.ambiguous_emails.len(), 1);
    assert_eq!(plan.assessment.ambiguous_emails[0].host_users, ["h2", "h3"]);
}

#[test]
fn an_email_link_goes_when_the_host_users_email_changes_and_a_phone_conflict_refuses_it() {
    let mut state = withheld(
        &["alice"],
        &[("h1", None, Some("alice@corp.example"))],
        &[("alice@corp.example", "alice")],
    );
    state.links.insert(
        "h1".into(),
        Link {
            userid_key: "alice".into(),
            userid: "alice".into(),
            method: Method::Email,
        },
    );
    assert!(plan(&state).is_empty());
    if let Some(host) = state.host_users.get_mut("h1") {
        host.email = email_key("alice.new@corp.example");
    }
    assert_eq!(
        removed(&plan(&state)),
        [("h1".into(), "alice".into(), Reason::EmailChanged)]
    );

    // Both mobiles known and different: the email is no proof.
    let mut state = withheld(
        &["alice"],
        &[("h1", Some(A), Some("alice@corp.example"))],
        &[("alice@corp.example", "alice")],
    );
    if let Some(member) = state.members.get_mut("alice") {
        member.mobile = phone::normalize(B);
    }
    let plan = plan(&state);
    assert!(plan.created.is_empty());
    assert_eq!(plan.assessment.conflicts.len(), 1);
}

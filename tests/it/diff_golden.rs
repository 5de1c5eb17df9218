//! Golden tests for the diff: each directory under tests/fixtures/diff holds a mirror and a
//! pull, and `expected.json` holds the events the diff must produce, in order.
//! `UPDATE_GOLDEN=1 cargo test --test it diff_golden::` rewrites the expectations; review the diff.

use std::fs;
use std::path::Path;

use orgsync::diff::diff;
use orgsync::events::changeset_events;
use orgsync::model::{Department, Member, Snapshot};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct Fixture {
    #[serde(default)]
    departments: Vec<Department>,
    #[serde(default)]
    members: Vec<Member>,
}

fn load(path: &Path) -> Snapshot {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fixture: Fixture =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut snapshot = Snapshot::default();
    for department in fixture.departments {
        snapshot.insert_department(department);
    }
    for member in fixture.members {
        snapshot.insert_member(member);
    }
    snapshot
}

fn run_case(name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/diff")
        .join(name);
    let mirror = load(&dir.join("mirror.json"));
    let pull = load(&dir.join("pull.json"));
    let events: Vec<Value> = changeset_events(&diff(&mirror, pull))
        .into_iter()
        .map(|e| json!({"type": e.kind.as_str(), "subject": e.subject, "data": e.data}))
        .collect();
    let actual = serde_json::to_string_pretty(&events).expect("events serialize") + "\n";
    let expected_path = dir.join("expected.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&expected_path, &actual).expect("write golden file");
    }
    let expected = fs::read_to_string(&expected_path)
        .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
    assert_eq!(
        actual,
        expected,
        "diff output for case {name} differs from {}",
        expected_path.display()
    );
}

#[test]
fn first_sync_creates_parents_before_children() {
    run_case("first_sync");
}

#[test]
fn unchanged_directory_produces_nothing() {
    run_case("no_change");
}

#[test]
fn renames_and_moves() {
    run_case("rename_and_move");
}

#[test]
fn multi_department_members() {
    run_case("multi_department");
}

#[test]
fn withheld_fields_are_unknown_not_cleared() {
    run_case("withheld_fields");
}

#[test]
fn userid_case_change_is_an_update() {
    run_case("userid_case");
}

#[test]
fn leaves_and_deletions_children_first() {
    run_case("leave_and_delete");
}

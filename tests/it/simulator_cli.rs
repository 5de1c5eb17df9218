//! `orgsync simulator`, the standalone simulated tenant: what it prints is enough to configure
//! orgsync against it, and `--members` serves a generated company of that size.

use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use crate::harness::{orgsync, output, WAIT};

/// Starts `orgsync simulator` on a free port and returns it with its banner line.
async fn start(args: &[&str]) -> (Child, String) {
    let mut child = orgsync(&["simulator", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start orgsync simulator");
    let stdout = child.stdout.take().expect("stdout");
    let mut banner = String::new();
    tokio::time::timeout(WAIT, BufReader::new(stdout).read_line(&mut banner))
        .await
        .expect("the banner within a minute")
        .expect("read the banner");
    (child, banner)
}

/// The API base, corp id and secret the banner gives.
fn settings(banner: &str) -> (String, String, String) {
    let words: Vec<&str> = banner.split_whitespace().collect();
    let after = |word: &str| {
        let at = words.iter().position(|w| *w == word).expect(word);
        words[at + 1].trim_end_matches(':').to_owned()
    };
    (after("on"), after("corp_id"), after("secret"))
}

async fn get(url: String) -> Value {
    reqwest::get(url)
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test]
async fn a_generated_company_is_served_on_the_port_the_banner_names() {
    let (_child, banner) = start(&["--members", "300", "--departments", "15", "--seed", "7"]).await;
    assert!(banner.contains("(15 departments, 300 members)"), "{banner}");
    let (api_base, corp_id, secret) = settings(&banner);
    assert!(
        !api_base.ends_with(":0"),
        "the banner names the port chosen: {banner}"
    );

    let token = get(format!(
        "{api_base}/cgi-bin/gettoken?corpid={corp_id}&corpsecret={secret}"
    ))
    .await;
    let token = token["access_token"].as_str().expect("a token");
    let departments = get(format!(
        "{api_base}/cgi-bin/department/list?access_token={token}"
    ))
    .await;
    assert_eq!(departments["errcode"], 0);
    assert_eq!(departments["department"].as_array().map(Vec::len), Some(15));
}

#[tokio::test]
async fn the_seed_chooses_the_company() {
    let (_a, first) = start(&["--members", "50", "--seed", "11"]).await;
    let (_b, second) = start(&["--members", "50", "--seed", "11"]).await;
    let (_c, other) = start(&["--members", "50", "--seed", "12"]).await;
    let (_, corp_a, secret_a) = settings(&first);
    let (_, corp_b, secret_b) = settings(&second);
    let (_, corp_c, _) = settings(&other);
    assert_eq!((&corp_a, secret_a), (&corp_b, secret_b));
    assert_ne!(corp_a, corp_c, "another seed, another company");
    assert!(first.contains("(2 departments, 50 members)"), "{first}");
}

#[tokio::test]
async fn members_and_a_directory_file_cannot_be_combined() {
    let output = output(orgsync(&[
        "simulator",
        "--members",
        "10",
        "--directory",
        "company.json",
    ]))
    .await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

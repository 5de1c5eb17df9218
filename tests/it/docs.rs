//! The docs against what they describe: the key table of docs/configuration.md against
//! config/orgsync.example.toml, the README's layout table against the modules in the tree, and
//! the Python client in docs/protocol.md, taken from the markdown as it is, against the real
//! daemon.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use orgsync::socket;
use orgsync::store::consumers;
use orgsync_simulator::Directory;
use serde_json::json;

use crate::harness::{read_only, Env, Python, WAIT};

fn read(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The keys of an example config: `section.key` for every key set, or shown commented out as
/// `# key = value`, inside a `[section]`.
fn example_keys(toml: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut section = None;
    for line in toml.lines() {
        let trimmed = line.trim();
        // `[section]`, or `[[section.array]]` whose keys are `section.array.key`.
        // An array of tables is shown commented out when the example sets none.
        let array = trimmed.strip_prefix('#').map_or(trimmed, str::trim_start);
        let header = array
            .strip_prefix("[[")
            .and_then(|rest| rest.strip_suffix("]]"))
            .or_else(|| {
                trimmed
                    .strip_prefix('[')
                    .and_then(|rest| rest.strip_suffix(']'))
            })
            .filter(|name| {
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            });
        if let Some(name) = header {
            section = Some(name);
        } else if let (Some(section), Some(key)) = (section, key_of(line)) {
            keys.insert(format!("{section}.{key}"));
        }
    }
    keys
}

/// `key` of a line `key = value` or `# key = value`: a key of lower-case letters, digits and
/// underscores that starts with a letter, and a value that is not empty.
fn key_of(line: &str) -> Option<&str> {
    let rest = line.trim_start();
    let rest = rest.strip_prefix('#').unwrap_or(rest).trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(rest.len());
    let (key, after) = rest.split_at(end);
    let value = after.trim_start().strip_prefix('=')?.trim_start();
    (key.starts_with(|c: char| c.is_ascii_lowercase()) && !value.is_empty()).then_some(key)
}

/// The keys of a markdown table: the rows whose first cell is one backticked `section.key`, or
/// several separated by commas.
fn table_keys(markdown: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for line in markdown.lines().filter(|line| line.starts_with('|')) {
        let first = line.split('|').nth(1).unwrap_or_default();
        let row: Option<Vec<&str>> = first
            .split(',')
            .map(|cell| backticked_key(cell.trim()))
            .collect();
        keys.extend(row.into_iter().flatten().map(str::to_owned));
    }
    keys
}

/// `section.key` of `` `section.key` `` (or `section.array.key`, a key of an array of
/// tables), each part of lower-case letters and underscores.
fn backticked_key(text: &str) -> Option<&str> {
    let key = text.strip_prefix('`')?.strip_suffix('`')?;
    let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    let parts = key.split('.').count();
    ((2..=3).contains(&parts) && key.split('.').all(word)).then_some(key)
}

/// What an example config and a key table disagree on, as a message naming the keys; `None`
/// when they list the same keys.
fn key_differences(example: &str, table: &str) -> Option<String> {
    let (example, table) = (example_keys(example), table_keys(table));
    let missing: Vec<&String> = example.difference(&table).collect();
    let extra: Vec<&String> = table.difference(&example).collect();
    (!missing.is_empty() || !extra.is_empty()).then(|| {
        format!(
            "in config/orgsync.example.toml but not in docs/configuration.md's table: \
             {missing:?}; in the table but not in the example: {extra:?}"
        )
    })
}

#[test]
fn the_configuration_key_table_lists_exactly_the_example_configs_keys() {
    let example = read("config/orgsync.example.toml");
    let table = read("docs/configuration.md");
    assert!(
        !example_keys(&example).is_empty() && !table_keys(&table).is_empty(),
        "no keys found: has the format of the example or of the table changed?"
    );
    if let Some(differences) = key_differences(&example, &table) {
        panic!("{differences}");
    }
}

#[test]
fn the_key_check_names_the_keys_that_differ() {
    let example = "# prose = before any section\n[wecom]\n# A comment.\ncorp_id = \"ww\"\n\
                   # agent_id = 1000002\n  [store]  \npath = \"x\"\n[socket]\n# group =\n\
                   [[http.tokens]]\nname = \"crm\"\n";
    assert_eq!(
        example_keys(example),
        BTreeSet::from([
            "wecom.corp_id".into(),
            "wecom.agent_id".into(),
            "store.path".into(),
            "http.tokens.name".into()
        ])
    );
    let table = "| key | default |\n|---|---|\n| `wecom.corp_id` | |\n| `http.tokens.name` | |\n\
                 | `wecom.agent_id`, `log.level` | |\n| `wecom.api_base` or not | |\n";
    let differences = key_differences(example, table).expect("they differ");
    assert_eq!(
        differences,
        "in config/orgsync.example.toml but not in docs/configuration.md's table: \
         [\"store.path\"]; in the table but not in the example: [\"log.level\"]"
    );
}

/// The ```python blocks of a markdown text.
fn python_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut block: Option<String> = None;
    for line in markdown.lines() {
        let fence = line.trim_end();
        if let Some(code) = &mut block {
            if fence == "```" {
                blocks.extend(block.take());
            } else {
                code.push_str(line);
                code.push('\n');
            }
        } else if fence == "```python" {
            block = Some(String::new());
        }
    }
    blocks
}

/// The client in docs/protocol.md, run as the doc says (the socket path as its argument),
/// reads a backlog that arrives in one burst and then live events, acknowledging each: reading
/// and writing through one buffered file object would lose the read-ahead at the first ack.
#[tokio::test]
async fn the_protocol_docs_python_client_reads_events_across_acks() {
    let snippets: Vec<String> = python_blocks(&read("docs/protocol.md"))
        .into_iter()
        .filter(|code| code.contains("\"subscribe\"") && code.contains("\"ack\""))
        .collect();
    assert_eq!(
        snippets.len(),
        1,
        "docs/protocol.md has one Python client that subscribes and acks: {snippets:#?}"
    );
    let snippet = &snippets[0];
    let consumer = snippet
        .split("\"consumer\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the snippet names its consumer");

    let env = Env::new(Directory::sample()).await;
    let script = env.path("client.py");
    std::fs::write(&script, snippet).expect("write the snippet");
    let (daemon, mut watcher) = env.start_synced_daemon().await;
    // The consumer has acked the first event: the rest of the start-up sync is its backlog.
    let ack = json!({"op": "ack", "consumer": consumer, "seq": 1});
    let acked = socket::request(&env.socket_path(), &ack).await;
    assert_eq!(acked.expect("ack")["ok"], true);
    let backlog = env.events_since(1).await;
    assert!(backlog.len() > 10, "{backlog:?}");

    let mut client = Python::spawn(&script, [env.socket_path()]);
    let summary = |event: &serde_json::Value| {
        format!(
            "{} {}",
            event["type"].as_str().unwrap_or_default(),
            event["subject"].as_str().unwrap_or_default()
        )
    };
    for event in &backlog {
        assert_eq!(client.line().await, summary(event));
    }
    // Live: a member leaves, and the daemon syncs.
    env.sim.edit(|d| d.users.retain(|u| u.userid != "zhuxin"));
    let resync = socket::request(&env.socket_path(), &json!({"op": "resync"})).await;
    assert_eq!(resync.expect("resync")["queued"], true);
    let live = watcher.run_events().await;
    assert!(live.len() >= 2, "{live:?}");
    for event in &live {
        assert_eq!(client.line().await, summary(event));
    }

    // Every event was acknowledged: the consumer's cursor reaches the last one.
    let last = live.last().and_then(|e| e["seq"].as_i64()).expect("a seq");
    let store = env.store_path();
    tokio::time::timeout(WAIT, async {
        while consumers::cursor(&read_only(&store), consumer).expect("cursor") != Some(last) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the client acknowledged every event it printed");
    let stderr = client.kill().await;
    assert!(
        !stderr.contains("JSONDecodeError") && !stderr.contains("Traceback"),
        "{stderr}"
    );
    daemon.stop().await;
}

/// The rows of the README's layout table, by their first cell.
fn layout_rows(readme: &str) -> Vec<(&str, &str)> {
    let start = readme
        .find("## Layout")
        .expect("README has a Layout section");
    readme[start..]
        .lines()
        .skip_while(|line| !line.starts_with("| `"))
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| {
            let mut cells = line.trim_matches('|').splitn(2, '|');
            Some((cells.next()?, cells.next()?))
        })
        .collect()
}

/// The modules of `dir` the layout table does not name: a top-level file by its path, a
/// module inside a directory by its name in that directory's row; a directory with a row of
/// its own is checked in turn.
fn unnamed_modules(rows: &[(&str, &str)], dir: &str, row_of_dir: &str) -> Vec<String> {
    let mut missing = Vec::new();
    let row = rows
        .iter()
        .find(|(path, _)| path.contains(&format!("`{row_of_dir}`")));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut entries: Vec<_> = std::fs::read_dir(root.join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 name");
        let stem = name.strip_suffix(".rs").unwrap_or(name);
        let own_path = if path.is_dir() {
            format!("{dir}/{name}/")
        } else {
            format!("{dir}/{name}")
        };
        if path.is_dir()
            && rows
                .iter()
                .any(|(p, _)| p.contains(&format!("`{own_path}`")))
        {
            missing.extend(unnamed_modules(rows, &format!("{dir}/{name}"), &own_path));
            continue;
        }
        let named = match row {
            None => rows
                .iter()
                .any(|(p, _)| p.contains(&format!("`{own_path}`"))),
            Some((_, what)) => {
                what.contains(&format!("`{stem}`")) || what.contains(&format!("`{stem}/`"))
            }
        };
        if !named && (path.is_dir() || name.ends_with(".rs")) {
            missing.push(own_path);
        }
    }
    missing
}

#[test]
fn the_readme_layout_names_every_module() {
    let readme = read("README.md");
    let rows = layout_rows(&readme);
    let mut missing = unnamed_modules(&rows, "src", "src/");
    missing.extend(unnamed_modules(
        &rows,
        "crates/simulator/src",
        "crates/simulator/",
    ));
    assert!(
        missing.is_empty(),
        "README.md's layout table does not name: {missing:?}"
    );
}

#[test]
fn the_layout_check_finds_a_module_left_out() {
    let rows = [("`src/store/`", "SQLite: `mod`, `schema`")];
    let missing = unnamed_modules(&rows, "src", "src/");
    assert!(missing.contains(&"src/sync.rs".to_owned()), "{missing:?}");
    assert!(
        missing.contains(&"src/store/mirror.rs".to_owned()),
        "{missing:?}"
    );
}

//! `orgsync host-users import FILE`: host users from CSV or JSON Lines, streamed row by row into
//! one write transaction, so a file of any size is imported without being held in memory.
//!
//! - The format is told by the first character of the file: `{` is JSON Lines (one object per
//!   line, as in `host_users.put`; blank lines are skipped), anything else is CSV.
//! - CSV ([`super::csv`]: quoted fields may hold commas, `""` and line breaks) starts with a header
//!   naming its columns: `id` and any of `name`, `mobile`, `email`, in any order. Empty cells
//!   are absent values. A UTF-8 byte-order mark (Excel's "CSV UTF-8") is skipped; any other
//!   encoding is refused with a line number.
//! - A bad row is reported by the line it starts on. By default one bad row aborts the whole
//!   import: nothing is written. With `--skip-bad` the good rows are imported and the bad ones
//!   reported. An id given twice is a bad row (the first one counts).
//! - A file without a single good row is refused: with `--replace` it would remove every host
//!   user, which is never what an empty export means.

use std::io::BufRead;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::apply::{rematch_and_announce, LinkChanges};
use super::csv::{CsvError, CsvReader};
use super::facts_of;
use crate::events::EventSource;
use crate::model::host_user::HostUser;
use crate::store::host_users::{Batch, BatchSummary};
use crate::store::StoreError;

/// Bad rows kept for the message; more are only counted.
pub const MAX_REPORTED_BAD_ROWS: usize = 100;

const COLUMNS: [&str; 4] = ["id", "name", "mobile", "email"];

/// One row of the file: the line it starts on, and the host user or what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub line: u64,
    pub user: Result<HostUser, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub line: u64,
    pub problem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the file: {0}")]
    Read(#[from] std::io::Error),
    #[error("line {line}: {problem}")]
    Header { line: u64, problem: String },
    #[error("{0}")]
    Unterminated(CsvError),
    #[error("{} bad row{}; nothing was imported. Fix {}, or pass --skip-bad to import the good rows", total, if *total == 1 { "" } else { "s" }, if *total == 1 { "it" } else { "them" })]
    BadRows { rows: Vec<BadRow>, total: usize },
    #[error("the file has no host users; nothing was imported")]
    NoRows,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ImportError {
    /// Bad input is exit status 2; failing to read or write is 1.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ImportError::Header { .. }
                | ImportError::Unterminated(_)
                | ImportError::BadRows { .. }
                | ImportError::NoRows
        )
    }
}

/// The rows of a CSV or JSON Lines stream.
pub struct Rows<R: BufRead> {
    source: Source<R>,
}

enum Source<R: BufRead> {
    Csv {
        reader: CsvReader<R>,
        /// Which of id, name, mobile, email each column is.
        columns: Vec<usize>,
    },
    JsonLines {
        reader: R,
        line: u64,
        buffer: Vec<u8>,
    },
}

impl From<CsvError> for ImportError {
    fn from(error: CsvError) -> ImportError {
        match error {
            CsvError::Read(error) => ImportError::Read(error),
            unterminated => ImportError::Unterminated(unterminated),
        }
    }
}

/// Tells the format and, for CSV, reads the header.
pub fn rows<R: BufRead>(mut reader: R) -> Result<Rows<R>, ImportError> {
    if reader.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    }
    let json = reader
        .fill_buf()?
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{');
    let source = if json {
        Source::JsonLines {
            reader,
            line: 0,
            buffer: Vec::new(),
        }
    } else {
        let mut reader = CsvReader::new(reader);
        let Some((line, header)) = reader.next_record()? else {
            return Err(ImportError::NoRows);
        };
        let header = header.map_err(|problem| ImportError::Header { line, problem })?;
        Source::Csv {
            columns: columns(line, &header)?,
            reader,
        }
    };
    Ok(Rows { source })
}

fn columns(line: u64, header: &[Vec<u8>]) -> Result<Vec<usize>, ImportError> {
    let problem = |problem: String| ImportError::Header { line, problem };
    let expected = "the first line must name the columns, like id,name,mobile,email";
    let mut columns = Vec::with_capacity(header.len());
    for cell in header {
        let name = std::str::from_utf8(cell)
            .map_err(|_| problem(format!("the header is not valid UTF-8; {expected}")))?
            .trim()
            .to_lowercase();
        let Some(column) = COLUMNS.iter().position(|c| *c == name) else {
            return Err(problem(format!(
                "unknown column {name:?}; {expected} (id is required, the others optional)"
            )));
        };
        if columns.contains(&column) {
            return Err(problem(format!("column {name:?} appears twice")));
        }
        columns.push(column);
    }
    if !columns.contains(&0) {
        return Err(problem(format!("there is no id column; {expected}")));
    }
    Ok(columns)
}

impl<R: BufRead> Iterator for Rows<R> {
    type Item = Result<Row, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.source {
            Source::Csv { reader, columns } => match reader.next_record() {
                Err(error) => Some(Err(error.into())),
                Ok(None) => None,
                Ok(Some((line, record))) => Some(Ok(Row {
                    line,
                    user: record.and_then(|fields| csv_user(&fields, columns)),
                })),
            },
            Source::JsonLines {
                reader,
                line,
                buffer,
            } => loop {
                buffer.clear();
                match reader.read_until(b'\n', buffer) {
                    Err(error) => return Some(Err(ImportError::Read(error))),
                    Ok(0) => return None,
                    Ok(_) => {}
                }
                *line += 1;
                if buffer.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(Ok(Row {
                    line: *line,
                    user: json_user(buffer),
                }));
            },
        }
    }
}

const NOT_UTF8: &str = "is not valid UTF-8; save the file as UTF-8 (in Excel: \"CSV UTF-8\")";

fn csv_user(fields: &[Vec<u8>], columns: &[usize]) -> Result<HostUser, String> {
    if fields.len() != columns.len() {
        return Err(format!(
            "has {} fields, but the header names {}; quote fields that contain commas",
            fields.len(),
            columns.len()
        ));
    }
    let mut cells: [Option<&str>; 4] = [None; 4];
    for (cell, &column) in fields.iter().zip(columns) {
        let text = std::str::from_utf8(cell).map_err(|_| NOT_UTF8.to_owned())?;
        cells[column] = Some(text);
    }
    let [id, name, mobile, email] = cells;
    HostUser::from_fields(id.unwrap_or_default(), name, mobile, email).map_err(|e| e.to_string())
}

fn json_user(line: &[u8]) -> Result<HostUser, String> {
    let text = std::str::from_utf8(line).map_err(|_| NOT_UTF8.to_owned())?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("is not valid JSON ({e})"))?;
    HostUser::from_json(&value).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// The file is the whole set: host users not in it are removed.
    pub replace: bool,
    /// Import the good rows even when some are bad.
    pub skip_bad: bool,
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct Imported {
    pub summary: BatchSummary,
    /// Skipped rows (only with `skip_bad`), at most [`MAX_REPORTED_BAD_ROWS`] of them.
    pub bad: Vec<BadRow>,
    pub bad_total: usize,
    pub changes: LinkChanges,
}

/// Streams the rows into the store inside the caller's write transaction, then re-matches and
/// announces the link changes. An error leaves the transaction to be rolled back.
pub fn import<R: BufRead>(
    conn: &Connection,
    source: &EventSource,
    by: &str,
    rows: Rows<R>,
    options: Options,
    now: DateTime<Utc>,
) -> Result<Imported, ImportError> {
    let mut batch = Batch::begin(conn, now)?;
    let mut bad = Vec::new();
    let mut bad_total = 0;
    let mut good = 0;
    for row in rows {
        let row = row?;
        let problem = match row.user {
            Ok(user) => match batch.put(&user, &facts_of(&user), row.line)? {
                None => {
                    good += 1;
                    continue;
                }
                Some(duplicate) => format!(
                    "id {:?} already appeared on line {}; give each host user once",
                    user.id, duplicate.first
                ),
            },
            Err(problem) => problem,
        };
        bad_total += 1;
        if bad.len() < MAX_REPORTED_BAD_ROWS {
            bad.push(BadRow {
                line: row.line,
                problem,
            });
        }
    }
    if bad_total > 0 && !options.skip_bad {
        return Err(ImportError::BadRows {
            rows: bad,
            total: bad_total,
        });
    }
    if good == 0 {
        return Err(ImportError::NoRows);
    }
    let summary = batch.finish(options.replace)?;
    let changes = rematch_and_announce(conn, source, by, now)?;
    Ok(Imported {
        summary,
        bad,
        bad_total,
        changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::host_user::tests::user;

    fn read(text: &str) -> Vec<(u64, Result<HostUser, String>)> {
        rows(text.as_bytes())
            .expect("a readable start")
            .map(|row| row.map(|row| (row.line, row.user)).expect("no fatal error"))
            .collect()
    }

    #[test]
    fn reads_csv_with_quoting_and_counts_lines_where_each_row_starts() {
        let text = "id,name,mobile,email\n\
                    1,王芳,13800138000,wf@x.cn\n\
                    \"2\",\"Li, Na\",\"+86 139 1122 0876\",\n\
                    3,\"He said \"\"hi\"\"\",,\n\
                    4,\"two\nlines\",,\n\
                    5,Zhou,,z@x.cn\r\n";
        let rows = read(text);
        assert_eq!(
            rows,
            [
                (
                    2,
                    Ok(user(
                        "1",
                        Some("王芳"),
                        Some("13800138000"),
                        Some("wf@x.cn")
                    ))
                ),
                (
                    3,
                    Ok(user("2", Some("Li, Na"), Some("+86 139 1122 0876"), None))
                ),
                (4, Ok(user("3", Some("He said \"hi\""), None, None))),
                (5, Err("\"name\" contains a control character".into())),
                (7, Ok(user("5", Some("Zhou"), None, Some("z@x.cn")))),
            ]
        );
    }

    #[test]
    fn blank_csv_lines_are_skipped() {
        let rows = read("id\n\n1\n\r\n2\n");
        assert_eq!(
            rows,
            [
                (3, Ok(user("1", None, None, None))),
                (5, Ok(user("2", None, None, None)))
            ]
        );
    }

    #[test]
    fn csv_columns_may_come_in_any_order_and_some_may_be_left_out() {
        let rows = read("\u{FEFF}Mobile, ID\n13800138000,7\n");
        assert_eq!(rows, [(2, Ok(user("7", None, Some("13800138000"), None)))]);
    }

    #[test]
    fn bad_csv_rows_say_what_is_wrong() {
        let rows = read("id,name\n1,a,b\n,nobody\n 3,x\n");
        let problems: Vec<(u64, String)> = rows
            .into_iter()
            .map(|(line, user)| (line, user.expect_err("bad")))
            .collect();
        assert_eq!(problems.len(), 3);
        assert_eq!(problems[0].0, 2);
        assert!(problems[0].1.contains("has 3 fields"), "{}", problems[0].1);
        assert_eq!(problems[1], (3, "\"id\" is empty".into()));
        assert_eq!(problems[2].0, 4);
        assert!(problems[2].1.contains("whitespace"));
    }

    #[test]
    fn a_row_in_another_encoding_is_refused_by_line() {
        let mut bytes = b"id,name\n1,ok\n2,".to_vec();
        bytes.extend([0xCD, 0xF5, 0xB7, 0xBC]); // 王芳 in GBK
        bytes.push(b'\n');
        let rows: Vec<Row> = rows(bytes.as_slice())
            .expect("header")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert!(rows[0].user.is_ok());
        assert_eq!(rows[1].line, 3);
        assert!(rows[1].user.as_ref().is_err_and(|e| e.contains("UTF-8")));
    }

    #[test]
    fn bad_headers_are_fatal() {
        for (text, expected) in [
            ("name,mobile\n王芳,1\n", "no id column"),
            ("id,phone\n1,2\n", "unknown column \"phone\""),
            ("id,name,id\n1,a,1\n", "appears twice"),
        ] {
            let error = rows(text.as_bytes()).err().expect("refused").to_string();
            assert!(error.starts_with("line 1: "), "{error}");
            assert!(error.contains(expected), "{error}");
        }
        assert!(matches!(rows(&b""[..]), Err(ImportError::NoRows)));
    }

    #[test]
    fn reads_json_lines_skipping_blank_lines() {
        let text = "{\"id\": 1, \"name\": \"王芳\"}\n\
                    \n\
                    {\"id\": \"2\", \"mobile\": \"13800138000\", \"extra\": true}\r\n\
                    {\"id\": 3,\n\
                    [1]\n\
                    {\"id\": \"\"}";
        let rows = read(text);
        assert_eq!(rows[0], (1, Ok(user("1", Some("王芳"), None, None))));
        assert_eq!(rows[1], (3, Ok(user("2", None, Some("13800138000"), None))));
        assert_eq!(rows[2].0, 4);
        assert!(rows[2]
            .1
            .as_ref()
            .is_err_and(|e| e.contains("not valid JSON")));
        assert_eq!(rows[3].0, 5);
        assert!(rows[3].1.as_ref().is_err_and(|e| e.contains("JSON object")));
        assert_eq!(rows[4], (6, Err("\"id\" is empty".into())));
        assert_eq!(rows.len(), 5);
    }
}

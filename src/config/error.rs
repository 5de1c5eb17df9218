//! Configuration errors. Each one names the file or key and says what to do; the CLI prints the
//! message on one line and exits with status 2.

use std::fmt;
use std::io;
use std::path::PathBuf;

use figment::error::{Actual, Kind};
use thiserror::Error;

use super::secret::{SecretSource, CREDENTIAL_NAME};
use super::{env_var, Locator};

/// Where a configuration value came from, or, for a missing key, where it belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    /// The environment variable that set it, e.g. `ORGSYNC_WECOM__API_BASE`.
    Env(String),
    /// The TOML string given to [`Config::from_toml_str`](super::Config::from_toml_str).
    Text,
    /// Not set anywhere: the built-in default.
    Default,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config file {} does not exist; check the path given with --config or ORGSYNC_CONFIG, or create it from orgsync.example.toml (docs/configuration.md)", path.display())]
    NotFound { path: PathBuf },

    #[error("cannot read config file {}: {error}", path.display())]
    Unreadable { path: PathBuf, error: io::Error },

    #[error("{} is not valid TOML: {message}", Source(origin))]
    Syntax { origin: Origin, message: String },

    #[error("unknown {}{}", At(key, origin), UnknownHint { origin, suggestion, known })]
    UnknownKey {
        key: String,
        origin: Origin,
        /// The known key closest to the misspelt one, as a dotted key.
        suggestion: Option<String>,
        /// The keys allowed where the unknown one was found.
        known: &'static [&'static str],
    },

    #[error(
        "missing required {}: add it, or set {}",
        At(key, origin),
        env_var(key)
    )]
    MissingKey { key: String, origin: Origin },

    /// A value of the wrong type, or one that fails validation.
    #[error("{}: {reason}", At(key, origin))]
    InvalidValue {
        key: String,
        origin: Origin,
        reason: String,
    },

    #[error(
        "both `wecom.corp_secret` and `wecom.corp_secret_file` are set; keep only \
         `wecom.corp_secret_file` (a secret written in the config file leaks with it)"
    )]
    SecretConflict,

    #[error(
        "`wecom.corp_secret` is empty; put the app's Secret in a file and set \
         `wecom.corp_secret_file` to it instead"
    )]
    SecretEmpty,

    #[error(
        "no WeCom corp secret: looked for `wecom.corp_secret_file`, `wecom.corp_secret` and {}; \
         set `wecom.corp_secret_file` to a file that holds the app's Secret, or pass it as a \
         systemd credential (LoadCredential={CREDENTIAL_NAME}:/path/to/secret)",
        CredentialLookup(credential)
    )]
    SecretMissing {
        /// Where the systemd credential was looked for; `None` when `$CREDENTIALS_DIRECTORY`
        /// was not set.
        credential: Option<PathBuf>,
    },

    #[error(
        "cannot read the corp secret from {from}: {problem}{}",
        SecretFix(from, problem)
    )]
    SecretFile {
        from: SecretSource,
        problem: SecretFileProblem,
    },
}

#[derive(Debug, Error)]
pub enum SecretFileProblem {
    #[error("{0}")]
    Io(io::Error),
    #[error("it is larger than {limit} bytes; the file must hold only the secret")]
    TooLarge { limit: u64 },
    #[error("it is not UTF-8 text; the file must hold only the secret")]
    NotUtf8,
    #[error("it is empty; write the app's Secret into it")]
    Empty,
}

/// Turns a figment extraction error into one that names the key the way the operator wrote it:
/// a dotted key in the file, or the environment variable.
pub(super) fn from_figment(error: figment::Error, at: &Locator) -> ConfigError {
    let key = error.path.join(".");
    match error.kind {
        Kind::UnknownField(field, known) => {
            // In an array of tables the path has the index (`sinks.webhook.0.retries`): it is
            // named as written, `sinks.webhook[0].retries`, and found where its array is.
            let origin = nearest_origin(&key, at);
            let key = error.path.iter().fold(String::new(), |mut shown, part| {
                if part.parse::<usize>().is_ok() {
                    shown.push_str(&format!("[{part}]"));
                } else {
                    if !shown.is_empty() {
                        shown.push('.');
                    }
                    shown.push_str(part);
                }
                shown
            });
            let suggestion = closest(&field, known).map(|near| match key.rsplit_once('.') {
                Some((parent, _)) => format!("{parent}.{near}"),
                None => near.to_owned(),
            });
            ConfigError::UnknownKey {
                origin,
                key,
                suggestion,
                known,
            }
        }
        // Environment values always parse (as a string at worst), so only the file can be malformed.
        Kind::Message(message) if key.is_empty() => ConfigError::Syntax {
            origin: at.file.clone(),
            message: one_line_toml_error(&message),
        },
        kind => {
            let origin = at.origin(&key);
            let reason = match kind {
                Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
                    let hint = quote_hint(&origin, &actual, &expected);
                    format!("expected {}, found {actual}{hint}", plain_type(&expected))
                }
                Kind::UnknownVariant(found, known) => {
                    format!("`{found}` is not one of {}", backticked(known))
                }
                other => other.to_string(),
            };
            ConfigError::InvalidValue {
                key,
                origin,
                reason,
            }
        }
    }
}

/// Where `key` or, when it has no origin of its own, its nearest parent was set.
fn nearest_origin(key: &str, at: &Locator) -> Origin {
    let mut key = key;
    loop {
        match (at.origin(key), key.rsplit_once('.')) {
            (Origin::Default, Some((parent, _))) => key = parent,
            (origin, _) => return origin,
        }
    }
}

/// figment reads `ORGSYNC_X=123` as a number; a string key needs the value quoted.
fn quote_hint(origin: &Origin, actual: &Actual, expected: &str) -> String {
    match (origin, actual) {
        (
            Origin::Env(var),
            Actual::Unsigned(_) | Actual::Signed(_) | Actual::Float(_) | Actual::Bool(_),
        ) if expected == "a string" => {
            format!(" (to pass it as a string, quote it: {var}='\"...\"')")
        }
        _ => String::new(),
    }
}

/// serde names Rust types; an operator editing TOML thinks in TOML types.
fn plain_type(expected: &str) -> &str {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer",
        "f32" | "f64" => "a number",
        "a sequence" => "an array",
        struct_name if struct_name.starts_with("struct ") => "a table",
        other => other,
    }
}

/// The toml crate's message spans several lines with a source excerpt; the CLI prints one line.
fn one_line_toml_error(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.contains('|'))
        .map(|line| line.strip_prefix("TOML parse error at ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join(": ")
}

/// The known name within two edits of `unknown`, so `corpid` finds `corp_id`.
fn closest(unknown: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|name| (edit_distance(unknown, name), *name))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, name)| name)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

fn backticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "key `a.b` in FILE", or "environment variable ORGSYNC_A__B".
struct At<'a>(&'a str, &'a Origin);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let At(key, origin) = self;
        match origin {
            Origin::File(path) => write!(f, "key `{key}` in {}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Text => write!(f, "key `{key}`"),
            Origin::Default => write!(f, "key `{key}` (default value)"),
        }
    }
}

struct Source<'a>(&'a Origin);

impl fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Text | Origin::Default => f.write_str("the configuration"),
        }
    }
}

struct UnknownHint<'a> {
    origin: &'a Origin,
    suggestion: &'a Option<String>,
    known: &'a [&'a str],
}

impl fmt::Display for UnknownHint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.suggestion, self.origin) {
            (Some(key), Origin::Env(_)) => write!(f, " (did you mean {}?)", env_var(key)),
            (Some(key), _) => write!(f, " (did you mean `{key}`?)"),
            (None, _) => write!(f, "; the keys allowed there are {}", backticked(self.known)),
        }
    }
}

/// What to do about a secret file that cannot be read. The other problems say it themselves.
struct SecretFix<'a>(&'a SecretSource, &'a SecretFileProblem);

impl fmt::Display for SecretFix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let SecretFileProblem::Io(error) = self.1 else {
            return Ok(());
        };
        let permission = error.kind() == io::ErrorKind::PermissionDenied;
        match (self.0, permission) {
            (SecretSource::File(_), false) => f.write_str(
                "; write the app's Secret into it (chmod 600), or set `wecom.corp_secret_file` \
                 to the file that holds it",
            ),
            (SecretSource::File(_) | SecretSource::Credential(_), true) => f.write_str(
                "; make it readable by the user orgsync runs as, and by no one else (chmod 600)",
            ),
            (SecretSource::Credential(_), false) => write!(
                f,
                "; check the unit's LoadCredential={CREDENTIAL_NAME}:/path/to/secret"
            ),
            (SecretSource::Inline, _) => Ok(()),
        }
    }
}

struct CredentialLookup<'a>(&'a Option<PathBuf>);

impl fmt::Display for CredentialLookup<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(path) => write!(f, "the systemd credential {} (not found)", path.display()),
            None => write!(
                f,
                "the systemd credential `{CREDENTIAL_NAME}` ($CREDENTIALS_DIRECTORY is not set)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_known_key() {
        let known = &["corp_id", "corp_secret", "corp_secret_file", "agent_id"];
        assert_eq!(closest("corpid", known), Some("corp_id"));
        assert_eq!(closest("corp_secrets", known), Some("corp_secret"));
        assert_eq!(closest("timezone", known), None);
    }

    #[test]
    fn toml_syntax_errors_fit_on_one_line() {
        let message = "TOML parse error at line 1, column 7\n  |\n1 | [wecom\n  |       ^\n\
                       invalid table header\nexpected `.`, `]`\n";
        assert_eq!(
            one_line_toml_error(message),
            "line 1, column 7: invalid table header: expected `.`, `]`"
        );
    }
}

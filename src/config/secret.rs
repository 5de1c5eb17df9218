//! The WeCom corp secret: where it comes from, and a type that keeps it out of logs.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{ConfigError, SecretFileProblem};
use super::ConfigWarning;

/// The name systemd gives the credential file (`LoadCredential=corp_secret:...`).
pub(super) const CREDENTIAL_NAME: &str = "corp_secret";

/// A WeCom app secret is 43 characters; anything near this size is a wrong file.
const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// Where a secret named by a config key is read: the file the key gives, or else the systemd
/// credential `credential` in `$CREDENTIALS_DIRECTORY` when it exists. Neither: the end of the
/// error, `there is no systemd credential ...` with the unit line that gives one (`/path/to/
/// {what}`), for the caller to begin with its key.
pub(super) fn file_or_credential(
    file: Option<&Path>,
    credentials_dir: Option<&Path>,
    credential: &str,
    what: &str,
) -> Result<PathBuf, String> {
    let found = match (file, credentials_dir) {
        (Some(file), _) => Some(file.to_owned()),
        (None, Some(dir)) => Some(dir.join(credential)).filter(|path| path.exists()),
        (None, None) => None,
    };
    found.ok_or_else(|| {
        format!(
            "there is no systemd credential {credential} \
             (LoadCredential={credential}:/path/to/{what})"
        )
    })
}

/// Why a small text file (a secret, a token, signing keys) could not be read.
enum TextFileError {
    Io(std::io::Error),
    /// Larger than the caller's limit: not the file it should be.
    TooLarge,
    NotUtf8,
}

/// [`read_small_text`] of the file at `path`, its problems worded for the operator: an I/O
/// error as it is, a file too large as `it is larger than LIMIT bytes` and `too_large`, one
/// that is not UTF-8 as `it is not UTF-8 text; ` and `not_utf8`.
pub(super) fn read_small_file(
    path: &Path,
    limit: u64,
    too_large: &str,
    not_utf8: &str,
) -> Result<String, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    read_small_text(file, limit).map_err(|e| match e {
        TextFileError::Io(e) => e.to_string(),
        TextFileError::TooLarge => format!("it is larger than {limit} bytes{too_large}"),
        TextFileError::NotUtf8 => format!("it is not UTF-8 text; {not_utf8}"),
    })
}

/// Reads `file` as UTF-8 text of at most `limit` bytes. One byte over the limit is enough to
/// know the file is too large, without reading it all.
fn read_small_text(file: File, limit: u64) -> Result<String, TextFileError> {
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(TextFileError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(TextFileError::TooLarge);
    }
    String::from_utf8(bytes).map_err(|_| TextFileError::NotUtf8)
}

/// Holds the corp secret. It has no `Display`, its `Debug` prints `"<redacted>"`, and it
/// serializes as `"<redacted>"`, so neither a log line nor a printed config can leak it.
#[derive(Clone)]
pub(super) struct Secret(String);

impl Secret {
    /// Trailing whitespace is what editors and `echo` leave behind; an empty secret is never valid.
    pub(super) fn new(raw: &str) -> Option<Self> {
        let trimmed = raw.trim_end();
        (!trimmed.is_empty()).then(|| Self(trimmed.to_owned()))
    }

    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// Where the corp secret was read from, for `orgsync check-config` and for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `wecom.corp_secret`, in the file or as `ORGSYNC_WECOM__CORP_SECRET`.
    Inline,
    /// `wecom.corp_secret_file`.
    File(PathBuf),
    /// `$CREDENTIALS_DIRECTORY/corp_secret`.
    Credential(PathBuf),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Inline => f.write_str("inline `wecom.corp_secret`"),
            SecretSource::File(path) => write!(f, "file {}", path.display()),
            SecretSource::Credential(path) => {
                write!(
                    f,
                    "systemd credential {CREDENTIAL_NAME} ({})",
                    path.display()
                )
            }
        }
    }
}

pub(super) struct ResolvedSecret {
    pub(super) secret: Secret,
    pub(super) source: SecretSource,
    pub(super) warnings: Vec<ConfigWarning>,
}

/// Picks the secret from exactly one place: `corp_secret`, else `corp_secret_file`, else the
/// systemd credential. Setting both keys is an error rather than a precedence rule, because
/// either choice would silently ignore a secret the operator meant to use.
///
/// `corp_secret_file` must already be resolved to the path to open.
pub(super) fn resolve(
    inline: Option<&Secret>,
    file: Option<&Path>,
    credentials_dir: Option<&Path>,
) -> Result<ResolvedSecret, ConfigError> {
    let credential_path = credentials_dir.map(|dir| dir.join(CREDENTIAL_NAME));
    let credential = credential_path.as_deref().filter(|path| path.exists());
    let mut warnings = Vec::new();
    if let Some(credential) = credential.filter(|_| inline.is_some() || file.is_some()) {
        warnings.push(ConfigWarning::CredentialIgnored {
            credential: credential.to_owned(),
        });
    }

    let (secret, source) = match (inline, file, credential) {
        (Some(_), Some(_), _) => return Err(ConfigError::SecretConflict),
        (Some(inline), None, _) => {
            warnings.push(ConfigWarning::InlineSecret);
            let secret = Secret::new(inline.expose()).ok_or(ConfigError::SecretEmpty)?;
            (secret, SecretSource::Inline)
        }
        (None, Some(path), _) => {
            let source = SecretSource::File(path.to_owned());
            (read_file(path, &source, &mut warnings)?, source)
        }
        (None, None, Some(path)) => {
            let source = SecretSource::Credential(path.to_owned());
            (read_file(path, &source, &mut warnings)?, source)
        }
        (None, None, None) => {
            return Err(ConfigError::SecretMissing {
                credential: credential_path,
            })
        }
    };
    Ok(ResolvedSecret {
        secret,
        source,
        warnings,
    })
}

fn read_file(
    path: &Path,
    source: &SecretSource,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Secret, ConfigError> {
    let fail = |problem| ConfigError::SecretFile {
        from: source.clone(),
        problem,
    };
    let file = File::open(path).map_err(|e| fail(SecretFileProblem::Io(e)))?;
    let mode = file
        .metadata()
        .map_err(|e| fail(SecretFileProblem::Io(e)))?
        .permissions()
        .mode();
    if mode & 0o044 != 0 {
        warnings.push(ConfigWarning::SecretFileReadable {
            path: path.to_owned(),
            mode: mode & 0o777,
        });
    }

    let text = read_small_text(file, MAX_SECRET_FILE_BYTES).map_err(|e| {
        fail(match e {
            TextFileError::Io(e) => SecretFileProblem::Io(e),
            TextFileError::TooLarge => SecretFileProblem::TooLarge {
                limit: MAX_SECRET_FILE_BYTES,
            },
            TextFileError::NotUtf8 => SecretFileProblem::NotUtf8,
        })
    })?;
    Secret::new(&text).ok_or_else(|| fail(SecretFileProblem::Empty))
}

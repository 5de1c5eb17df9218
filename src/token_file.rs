//! The WeCom client's [`TokenShelf`]: each access token a process fetches is left here for the
//! corp's other processes (the daemon, an `orgsync sync` beside it, the daemon after a restart),
//! which take it before fetching their own, also after WeCom refused theirs. So one token
//! serves them all: WeCom's documentation no longer promises that a second `gettoken` returns
//! the token already issued rather than a new one that invalidates it.
//!
//! The token grants the app's API access for up to two hours, as the secret does for good. So
//! it is not kept in the store, which users who only read the directory may read and which
//! backups copy, but beside it in `<store.path>.token`, mode 0600: only the daemon's user (and
//! root) may read it, as only they may read the secret.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::wecom::{Secret, TokenShelf};

/// A token file larger than this is not one orgsync wrote.
const MAX_BYTES: u64 = 4096;

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SharedToken {
    /// Whose token it is (`WecomClient::credentials_id`), never the secret.
    credentials: String,
    token: String,
    /// When a client should fetch a new one instead.
    refresh_at: DateTime<Utc>,
}

/// Never shows the token.
impl fmt::Debug for SharedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedToken")
            .field("credentials", &self.credentials)
            .field("refresh_at", &self.refresh_at)
            .finish_non_exhaustive()
    }
}

/// The token file of the store at `store`, as the WeCom client's [`TokenShelf`].
#[derive(Debug)]
pub struct TokenFile {
    store: PathBuf,
}

impl TokenFile {
    pub fn new(store: &Path) -> TokenFile {
        TokenFile {
            store: store.to_owned(),
        }
    }
}

impl TokenShelf for TokenFile {
    fn take(&self, credentials: &str) -> Option<(Secret, Duration)> {
        let shared = read(&self.store, credentials)?;
        let left = (shared.refresh_at - Utc::now()).to_std().ok()?;
        Some((Secret::new(shared.token), left))
    }

    /// A failure only costs the next process one `gettoken`, so it is logged, not returned. A
    /// user who may only read the store (`orgsync sync --dry-run`) may not write the file.
    fn leave(&self, credentials: &str, token: &Secret, usable_for: Duration) {
        let shared = SharedToken {
            credentials: credentials.to_owned(),
            token: token.expose().to_owned(),
            refresh_at: Utc::now() + chrono::Duration::from_std(usable_for).unwrap_or_default(),
        };
        if let Err(error) = write(&self.store, &shared) {
            let path = path(&self.store);
            if error.kind() == io::ErrorKind::PermissionDenied {
                tracing::debug!(%error, path = %path.display(), "cannot leave the WeCom access token for the next process");
            } else {
                tracing::warn!(%error, path = %path.display(), "cannot leave the WeCom access token for the next process");
            }
        }
    }
}

/// Where the token of the store at `store` is kept.
pub fn path(store: &Path) -> PathBuf {
    let mut path = store.as_os_str().to_owned();
    path.push(".token");
    PathBuf::from(path)
}

/// The token left for `credentials`, if one is. A file that is missing, unreadable (another
/// user's) or not one orgsync wrote only costs a `gettoken`, so it reads as none.
fn read(store: &Path, credentials: &str) -> Option<SharedToken> {
    let mut text = String::new();
    File::open(path(store))
        .ok()?
        .take(MAX_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    serde_json::from_str::<SharedToken>(&text)
        .ok()
        .filter(|shared| shared.credentials == credentials)
}

/// Leaves `shared` for the next process: written to a new file of mode 0600 that then replaces
/// the old one, so that a reader never sees half a token.
fn write(store: &Path, shared: &SharedToken) -> io::Result<()> {
    let path = path(store);
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(&serde_json::to_vec(shared).map_err(io::Error::other)?)?;
        file.sync_all()?;
        fs::rename(&temporary, &path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_token_is_kept_per_credentials_in_a_private_file_and_never_shown() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = dir.path().join("orgsync.db");
        assert_eq!(read(&store, "c1"), None);
        let shared = SharedToken {
            credentials: "c1".into(),
            token: "TOKENx9Qm2Lw7".into(),
            refresh_at: Utc::now(),
        };
        write(&store, &shared).expect("write");
        assert_eq!(read(&store, "c1"), Some(shared.clone()));
        assert_eq!(read(&store, "c2"), None);
        let mode = fs::metadata(path(&store))
            .expect("the file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!format!("{shared:?}").contains("TOKEN"));

        fs::write(path(&store), "x".repeat(5000)).expect("overwrite");
        assert_eq!(read(&store, "c1"), None, "not a file orgsync wrote");
    }
}

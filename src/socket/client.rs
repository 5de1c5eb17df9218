//! The CLI's side of the socket: one request and its reply (`orgsync status`, `resync`), or a
//! subscription's lines (`resync --wait`).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use super::lines::{Line, LineReader};

/// How long the whole exchange may take; a status reply reads the store, which a running sync
/// may hold for a while.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest reply accepted (a status with many consumers is the largest there is).
const MAX_REPLY: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("is the daemon running? socket {} not found (set socket.path if it listens elsewhere)", path.display())]
    NotRunning { path: PathBuf },
    #[error("is the daemon running? nothing listens on {} (a stale socket from a stopped daemon)", path.display())]
    NotListening { path: PathBuf },
    #[error("permission denied on {}: run as the daemon's user or join socket.group", path.display())]
    PermissionDenied { path: PathBuf },
    #[error("cannot talk to the daemon on {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("the daemon on {} did not answer within {}s; check its log", path.display(), REPLY_TIMEOUT.as_secs())]
    Timeout { path: PathBuf },
    #[error("the daemon on {} closed the connection without answering; check its log", path.display())]
    NoReply { path: PathBuf },
    #[error("the daemon on {} sent a reply this orgsync cannot read ({detail}); are the client and the daemon the same version?", path.display())]
    BadReply { path: PathBuf, detail: String },
    #[error("the daemon refused the request ({code}): {message}")]
    Refused { code: String, message: String },
    #[error("{} is served by uid {uid}, which is neither root, this user, nor the owner of its directory; refusing to talk to it (is something impersonating orgsync?)", path.display())]
    Untrusted { path: PathBuf, uid: u32 },
}

/// Sends one request line to the daemon at `path` and returns its reply when `ok` is true; an
/// error reply becomes [`ClientError::Refused`] with the daemon's code and message.
pub async fn request(path: &Path, request: &Value) -> Result<Value, ClientError> {
    let reply = tokio::time::timeout(REPLY_TIMEOUT, exchange(path, request))
        .await
        .map_err(|_| ClientError::Timeout { path: path.into() })??;
    if reply.get("ok") == Some(&Value::Bool(true)) {
        return Ok(reply);
    }
    let error = reply.get("error");
    let field = |name: &str| {
        error
            .and_then(|e| e.get(name))
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned()
    };
    Err(ClientError::Refused {
        code: field("code"),
        message: field("message"),
    })
}

async fn exchange(path: &Path, request: &Value) -> Result<Value, ClientError> {
    let mut lines = send(path, request).await?;
    lines.next().await
}

/// A connection that sent its request; reads the reply and, after a `subscribe`, the events.
pub struct Lines {
    reader: LineReader<UnixStream>,
    path: PathBuf,
}

impl Lines {
    /// The next line, as a JSON object.
    pub async fn next(&mut self) -> Result<Value, ClientError> {
        let path = &self.path;
        let bad_reply = |detail: String| ClientError::BadReply {
            path: path.clone(),
            detail,
        };
        match self.reader.next().await {
            Err(source) => Err(ClientError::Io {
                path: path.clone(),
                source,
            }),
            // The daemon ends every reply with a newline: one cut off is one it never finished.
            Ok(None | Some(Line::Unterminated(_))) => {
                Err(ClientError::NoReply { path: path.clone() })
            }
            Ok(Some(Line::TooLarge)) => Err(bad_reply(format!("longer than {MAX_REPLY} bytes"))),
            Ok(Some(Line::Complete(line))) => match serde_json::from_slice(&line) {
                Ok(reply @ Value::Object(_)) => Ok(reply),
                Ok(_) => Err(bad_reply("not a JSON object".into())),
                Err(error) => Err(bad_reply(error.to_string())),
            },
        }
    }
}

/// Talks only to a socket served by root, by this user, or by the owner of the socket's
/// directory (the daemon's user under systemd): anyone else listening there has put a socket
/// of their own in the daemon's place, and would be told requests and believed in replies.
fn check_peer(path: &Path, stream: &UnixStream) -> Result<(), ClientError> {
    use std::os::unix::fs::MetadataExt;
    let io_error = |source| ClientError::Io {
        path: path.into(),
        source,
    };
    let uid = stream.peer_cred().map_err(io_error)?.uid();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let dir_owner = std::fs::metadata(dir).map_err(io_error)?.uid();
    if uid == 0 || uid == me || uid == dir_owner {
        Ok(())
    } else {
        Err(ClientError::Untrusted {
            path: path.into(),
            uid,
        })
    }
}

/// Connects to the daemon at `path` and sends one request line.
pub async fn send(path: &Path, request: &Value) -> Result<Lines, ClientError> {
    let mut stream = UnixStream::connect(path)
        .await
        .map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => ClientError::NotRunning { path: path.into() },
            io::ErrorKind::ConnectionRefused => ClientError::NotListening { path: path.into() },
            io::ErrorKind::PermissionDenied => ClientError::PermissionDenied { path: path.into() },
            _ => ClientError::Io {
                path: path.into(),
                source,
            },
        })?;
    check_peer(path, &stream)?;
    let mut line = request.to_string();
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .await
        .map_err(|source| ClientError::Io {
            path: path.into(),
            source,
        })?;
    Ok(Lines {
        reader: LineReader::new(stream, MAX_REPLY),
        path: path.into(),
    })
}

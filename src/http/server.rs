//! The accept loop: at most `max_connections` at once, TLS when configured, a bound on how
//! long a client may take for its handshake and its request headers, and a clean stop that
//! ends every connection (long-polls and streams included).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use super::{routes, HttpContext, HttpSettings, TlsFiles};

/// A pause after a failed accept (out of file descriptors, typically), so that the loop does
/// not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr} ({key}): {error}")]
    Bind {
        addr: SocketAddr,
        key: &'static str,
        error: std::io::Error,
    },
    #[error("cannot use {} ({key}) for TLS: {problem}", path.display())]
    Tls {
        key: &'static str,
        path: std::path::PathBuf,
        problem: String,
    },
}

/// A bound listener, with TLS set up if configured.
pub struct Listener {
    listener: TcpListener,
    tls: Option<watch::Sender<TlsAcceptor>>,
}

impl Listener {
    /// The address bound.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// What re-reads the certificate and key on a reload, when TLS is on.
    pub fn tls_reloader(&self, settings: &HttpSettings) -> Option<TlsReloader> {
        Some(TlsReloader {
            files: settings.tls.clone()?,
            acceptor: self.tls.clone()?,
        })
    }
}

/// Swaps in a renewed certificate and key from the files in use: connections accepted after
/// the swap get the new ones, those already open keep theirs.
pub struct TlsReloader {
    files: TlsFiles,
    acceptor: watch::Sender<TlsAcceptor>,
}

impl TlsReloader {
    /// Reads and checks the files; nothing changes until [`TlsReloader::put`].
    pub fn load(&self) -> Result<TlsAcceptor, HttpError> {
        acceptor(&self.files, &API_KEYS)
    }

    pub fn put(&self, acceptor: TlsAcceptor) {
        self.acceptor.send_replace(acceptor);
        tracing::info!("http tls certificate reloaded");
    }
}

/// Loads the TLS files and binds `http.listen`; logs `http listening addr=...` with the
/// address bound (the port chosen, for port 0).
pub async fn bind(settings: &HttpSettings) -> Result<Listener, HttpError> {
    bind_endpoint(settings.listen, settings.tls.as_ref(), API_KEYS).await
}

/// The API's own settings.
const API_KEYS: EndpointKeys = EndpointKeys {
    name: "http",
    listen: "http.listen",
    tls_cert_file: "http.tls_cert_file",
    tls_key_file: "http.tls_key_file",
};

/// The settings that configure an endpoint's listener, named in its errors and logs.
#[derive(Debug, Clone, Copy)]
pub struct EndpointKeys {
    /// What the log line calls it: `NAME listening addr=...`.
    pub name: &'static str,
    pub listen: &'static str,
    pub tls_cert_file: &'static str,
    pub tls_key_file: &'static str,
}

/// A listener for an endpoint (the API, or the callback receiver, served by [`serve_router`]):
/// TLS with `tls`, plain HTTP without. Logs `NAME listening addr=...` with the
/// address bound.
pub async fn bind_endpoint(
    addr: SocketAddr,
    tls: Option<&TlsFiles>,
    keys: EndpointKeys,
) -> Result<Listener, HttpError> {
    let tls = match tls {
        Some(files) => Some(acceptor(files, &keys)?),
        None => None,
    };
    let listener = bind_tcp(addr, keys.listen).await?;
    let bound = local_addr(&listener, addr, keys.listen)?;
    tracing::info!(addr = %bound, tls = tls.is_some(), "{} listening", keys.name);
    Ok(Listener {
        listener,
        tls: tls.map(watch::Sender::new),
    })
}

async fn bind_tcp(addr: SocketAddr, key: &'static str) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| HttpError::Bind { addr, key, error })
}

fn local_addr(
    listener: &TcpListener,
    addr: SocketAddr,
    key: &'static str,
) -> Result<SocketAddr, HttpError> {
    listener
        .local_addr()
        .map_err(|error| HttpError::Bind { addr, key, error })
}

/// Reads the certificate chain and key; errors name the endpoint's `tls_cert_file` and
/// `tls_key_file` settings.
fn acceptor(files: &TlsFiles, keys: &EndpointKeys) -> Result<TlsAcceptor, HttpError> {
    let (cert_key, key_key) = (keys.tls_cert_file, keys.tls_key_file);
    let tls_error = |key: &'static str, path: &Path, problem: String| HttpError::Tls {
        key,
        path: path.to_owned(),
        problem,
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_error(cert_key, &files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(tls_error(
            cert_key,
            &files.cert,
            "it holds no PEM certificate".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| tls_error(key_key, &files.key, e.to_string()))?;
    // The provider is named rather than taken from the process default, which rustls cannot
    // pick when more than one provider is compiled in.
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(cert_key, &files.cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls_error(key_key, &files.key, e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves the API until `shutdown` turns true, then closes every connection.
pub async fn serve(listener: Listener, ctx: Arc<HttpContext>, shutdown: watch::Receiver<bool>) {
    let router = routes::router(Arc::clone(&ctx));
    let limits = Limits {
        max_connections: ctx.settings.max_connections,
        header_timeout: ctx.settings.header_timeout,
    };
    serve_router(listener, router, limits, shutdown).await;
}

/// How many connections a server takes at once, and how long a client may take for its TLS
/// handshake and request headers.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// Serves `router` until `shutdown` turns true, then closes every connection.
pub async fn serve_router(
    listener: Listener,
    router: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = crate::shutdown::stopped(&mut shutdown) => break,
            Some(finished) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = finished {
                    if !error.is_cancelled() {
                        tracing::error!(%error, "http connection task failed");
                    }
                }
            }
            accepted = listener.listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                        tracing::warn!(%peer, max = limits.max_connections, "http connection refused: too many connections");
                        refuse(stream, listener.tls.is_some());
                        continue;
                    };
                    let router = router.clone();
                    let tls = listener.tls.as_ref().map(|tls| tls.borrow().clone());
                    let timeout = limits.header_timeout;
                    connections.spawn(async move {
                        serve_connection(stream, tls, router, timeout).await;
                        drop(slot);
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "http accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    connections.shutdown().await;
    tracing::info!("http closed");
}

/// Tells a plain-HTTP client over the cap why it is closed; a TLS one is only closed.
fn refuse(stream: TcpStream, tls: bool) {
    if tls {
        return;
    }
    tokio::spawn(async move {
        let body = r#"{"ok":false,"error":{"code":"too_many_connections","message":"the daemon already serves all the HTTP connections it may (http.max_connections); retry later"}}"#;
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut stream = stream;
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            stream.write_all(response.as_bytes()),
        )
        .await;
    });
}

async fn serve_connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    router: Router,
    timeout: Duration,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => serve_http(stream, router, timeout).await,
        Some(tls) => match tokio::time::timeout(timeout, tls.accept(stream)).await {
            Ok(Ok(stream)) => serve_http(stream, router, timeout).await,
            Ok(Err(error)) => tracing::debug!(%error, "http tls handshake failed"),
            Err(_) => tracing::debug!("http tls handshake timed out"),
        },
    }
}

async fn serve_http<S>(stream: S, router: Router, timeout: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(error) = served {
        tracing::debug!(%error, "http connection ended with an error");
    }
}

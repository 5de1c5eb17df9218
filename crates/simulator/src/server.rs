//! The accept loop. axum routes the requests, but the connections are served here with hyper
//! directly, because some faults live below HTTP:
//!
//! * `Close` and `Reset` must end the connection without a response. The handler flags the
//!   connection; the service then returns an error instead of the response, which makes hyper
//!   drop the connection unwritten (a FIN, for `Close`). For `Reset` the stream wrapper also
//!   sets `SO_LINGER` to zero on the way out so the kernel sends a RST rather than a FIN.
//!   `axum::serve` offers no hook for either step.
//! * `Hang` must keep a connection open without ever answering, yet the simulator must still
//!   stop on demand. Every connection task sits in a `JoinSet` owned by the accept loop, so
//!   stopping the loop aborts hung connections too (`axum::serve`'s graceful shutdown would wait
//!   for them forever).
//!
//! `Truncated` needs no such hook: the handler sends a short body with a matching
//! Content-Length.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{service_fn, Service};
use hyper::Request;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How the connection ends after the current request: `ANSWER` it as usual, or drop it
/// without a response, with a FIN (`CLOSE`) or a RST (`RESET`).
const ANSWER: u8 = 0;
const CLOSE: u8 = 1;
const RESET: u8 = 2;

/// The connection a request arrived on, as the handlers see it (a request extension).
#[derive(Clone)]
pub(crate) struct Connection {
    pub(crate) peer: SocketAddr,
    ending: Arc<AtomicU8>,
}

impl Connection {
    /// Close the connection instead of sending this request's response.
    pub(crate) fn close(&self) {
        self.ending.store(CLOSE, Ordering::Release);
    }

    /// Abort the connection instead of sending this request's response.
    pub(crate) fn reset(&self) {
        self.ending.store(RESET, Ordering::Release);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("connection ended by fault injection")]
struct EndedByFault;

/// Serves `listener` until `stop` turns true (or its sender is gone).
pub(crate) async fn run(listener: TcpListener, router: Router, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    let stopping = async move {
        // An error means the sender is gone, which also means stop.
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            () = &mut stopping => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, router.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: retrying at once would spin.
                    tracing::warn!(%error, "simulator cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Dropping the set aborts every connection still open, hung ones included.
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, router: Router) {
    let connection = Connection {
        peer,
        ending: Arc::new(AtomicU8::new(ANSWER)),
    };
    let io = TokioIo::new(Resettable {
        stream,
        ending: connection.ending.clone(),
    });
    let router = TowerToHyperService::new(router);
    let service = service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(connection.clone());
        let response = router.call(request);
        let ending = connection.ending.clone();
        async move {
            let response = response.await.map_err(|never| match never {})?;
            if ending.load(Ordering::Acquire) == ANSWER {
                Ok(response)
            } else {
                Err(EndedByFault)
            }
        }
    });
    if let Err(error) = http1::Builder::new().serve_connection(io, service).await {
        tracing::debug!(%error, %peer, "simulator connection ended");
    }
}

/// The TCP stream, able to end with a RST when its connection was reset by a fault.
struct Resettable {
    stream: TcpStream,
    ending: Arc<AtomicU8>,
}

impl Resettable {
    fn resetting(&self) -> bool {
        self.ending.load(Ordering::Acquire) == RESET
    }
}

impl Drop for Resettable {
    fn drop(&mut self) {
        if self.resetting() {
            // Zero linger never blocks (unlike other linger values): close sends RST at once.
            if let Err(error) = self.stream.set_zero_linger() {
                tracing::debug!(%error, "cannot set SO_LINGER for a reset");
            }
        }
    }
}

impl AsyncRead for Resettable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Resettable {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A FIN before the RST would let the client see a clean end of stream first.
        if self.resetting() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

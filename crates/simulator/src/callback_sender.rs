//! Contact-change callbacks sent the way WeCom sends them: when the directory changes, each
//! change becomes a `change_contact` event, encrypted and signed for the configured URL, and is
//! POSTed there in order, retried a few times when it is not answered `200`.
//!
//! Faults model what WeCom does to a receiver: the same callback twice, callbacks lost, and
//! callbacks out of order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::callback_crypto::{CallbackEncryptor, CallbackKeyError};
use super::callback_xml::{envelope_xml, ContactEvent, Payload};
use super::clock::since_epoch;
use super::directory::Directory;

/// Where callbacks go, and with which secrets: the URL, token and EncodingAESKey an admin
/// enters in the WeCom console.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackTarget {
    /// `http://HOST:PORT/PATH`.
    pub url: String,
    pub token: String,
    pub encoding_aes_key: String,
    #[serde(default = "full")]
    pub payload: Payload,
}

fn full() -> Payload {
    Payload::Full
}

/// What WeCom does to a receiver now and then.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallbackFaults {
    /// Deliver every callback twice.
    pub duplicate: bool,
    /// Lose the next this many callbacks.
    pub drop_next: u32,
    /// Deliver the callbacks of each change in reverse order.
    pub reverse: bool,
}

/// Delivery attempts per callback, and the pause between them.
const ATTEMPTS: u32 = 3;
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Counts of what was sent, for tests to wait on.
#[derive(Debug, Default)]
pub struct Sent {
    pub delivered: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
}

pub(crate) struct Sender {
    encryptor: CallbackEncryptor,
    payload: Payload,
    faults: CallbackFaults,
    queue: mpsc::UnboundedSender<Vec<Delivery>>,
    nonce: u64,
}

struct Delivery {
    query: String,
    body: String,
}

impl Sender {
    /// Starts the delivery task; must be called inside a Tokio runtime.
    pub(crate) fn start(
        target: CallbackTarget,
        corp_id: &str,
        sent: Arc<Sent>,
    ) -> Result<Sender, CallbackKeyError> {
        let encryptor = CallbackEncryptor::new(&target.token, &target.encoding_aes_key, corp_id)?;
        let (queue, deliveries) = mpsc::unbounded_channel();
        tokio::spawn(deliver(target.url, deliveries, sent));
        Ok(Sender {
            encryptor,
            payload: target.payload,
            faults: CallbackFaults::default(),
            queue,
            nonce: 0,
        })
    }

    pub(crate) fn payload(&self) -> Payload {
        self.payload
    }

    pub(crate) fn set_faults(&mut self, faults: CallbackFaults) {
        self.faults = faults;
    }

    /// Queues the callbacks of one change, in order (unless told to reverse them).
    pub(crate) fn send(&mut self, directory: &Directory, events: &[ContactEvent<'_>], sent: &Sent) {
        let now = unix_now();
        let mut batch = Vec::new();
        for event in events {
            if self.faults.drop_next > 0 {
                self.faults.drop_next -= 1;
                sent.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let xml = event.xml(&directory.corp_id, now, self.payload);
            let copies = if self.faults.duplicate { 2 } else { 1 };
            for _ in 0..copies {
                // Every delivery, a redelivery too, is sealed afresh, as WeCom does.
                self.nonce += 1;
                let nonce = format!("n{}", self.nonce);
                let sealed = self
                    .encryptor
                    .seal(xml.as_bytes(), &now.to_string(), &nonce);
                batch.push(Delivery {
                    query: format!(
                        "msg_signature={}&timestamp={}&nonce={}",
                        sealed.msg_signature, sealed.timestamp, sealed.nonce
                    ),
                    body: envelope_xml(&directory.corp_id, &sealed.encrypt, "1000002"),
                });
            }
        }
        if self.faults.reverse {
            batch.reverse();
        }
        if !batch.is_empty() {
            let _ = self.queue.send(batch);
        }
    }
}

fn unix_now() -> i64 {
    i64::try_from(since_epoch().as_secs()).unwrap_or(0)
}

async fn deliver(
    url: String,
    mut deliveries: mpsc::UnboundedReceiver<Vec<Delivery>>,
    sent: Arc<Sent>,
) {
    while let Some(batch) = deliveries.recv().await {
        for delivery in batch {
            let mut ok = false;
            for attempt in 0..ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                if post(&url, &delivery).await {
                    ok = true;
                    break;
                }
            }
            let counter = if ok { &sent.delivered } else { &sent.failed };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One POST over a fresh connection; whether it was answered `200`.
async fn post(url: &str, delivery: &Delivery) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(mut stream) = TcpStream::connect(host).await else {
        return false;
    };
    let request = format!(
        "POST /{path}?{} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        delivery.query,
        delivery.body.len(),
        delivery.body
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut response = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        (&mut stream).take(64 * 1024).read_to_end(&mut response),
    )
    .await;
    matches!(read, Ok(Ok(_))) && response.starts_with(b"HTTP/1.1 200")
}

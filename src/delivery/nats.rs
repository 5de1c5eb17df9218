//! NATS JetStream delivery: one message per event, on subject
//! `<prefix>.<corp_id>.<type without "orgsync.">`, its payload the event's stored line, with
//! `Nats-Msg-Id` = the event id so that the broker drops a message sent again within its
//! duplicate window. Up to the sink's `max_in_flight` messages are published before their
//! PubAcks are awaited, in order, each naming the one before it so that the broker never stores
//! them out of order (see [`Nats::publish`]); the runner moves the cursor only once all of them
//! are acked.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage, stream};
use bytes::Bytes;
use tokio::sync::Mutex;

use super::{event_id, Attempt};
use crate::config::NatsCredentials;
use crate::store::event_log::StoredEvent;

#[derive(Clone, PartialEq, Eq)]
pub struct NatsSettings {
    pub servers: Vec<String>,
    pub corp_id: String,
    pub subject_prefix: String,
    pub stream: Option<String>,
    pub create_stream: bool,
    pub credentials: Option<NatsCredentials>,
    pub tls_ca_file: Option<PathBuf>,
    /// A client certificate and its key.
    pub tls_client: Option<(PathBuf, PathBuf)>,
    pub tls_required: bool,
    pub timeout: Duration,
}

impl fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsSettings")
            .field("servers", &self.servers)
            .field("subject_prefix", &self.subject_prefix)
            .field("stream", &self.stream)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

impl NatsSettings {
    /// The subject of an event of type `kind`.
    pub fn subject(&self, kind: &str) -> String {
        format!(
            "{}.{}.{}",
            self.subject_prefix,
            self.corp_id,
            kind.strip_prefix("orgsync.").unwrap_or(kind)
        )
    }
}

pub struct Nats {
    settings: NatsSettings,
    /// Connected on first use; the client reconnects by itself after that.
    context: Mutex<Option<jetstream::Context>>,
    /// The id of the last message the broker confirmed, while the attempts succeed; `None` at
    /// first and after a failure (see [`Nats::publish`]).
    last_published: Mutex<Option<String>>,
}

impl Nats {
    pub fn new(settings: NatsSettings) -> Nats {
        Nats {
            settings,
            context: Mutex::new(None),
            last_published: Mutex::new(None),
        }
    }

    async fn context(&self) -> Result<jetstream::Context, String> {
        let mut slot = self.context.lock().await;
        if let Some(context) = slot.as_ref() {
            return Ok(context.clone());
        }
        let settings = &self.settings;
        let mut options = match &settings.credentials {
            Some(credentials) => async_nats::ConnectOptions::with_credentials(credentials.expose())
                .map_err(|e| format!("the credentials do not parse: {e}"))?,
            None => async_nats::ConnectOptions::new(),
        };
        options = options
            .name(concat!("orgsync/", env!("CARGO_PKG_VERSION")))
            .connection_timeout(settings.timeout)
            .request_timeout(Some(settings.timeout))
            .max_reconnects(None::<usize>)
            .require_tls(settings.tls_required);
        if let Some(ca) = &settings.tls_ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &settings.tls_client {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        let servers: Vec<async_nats::ServerAddr> = settings
            .servers
            .iter()
            .map(|server| {
                server
                    .parse()
                    .map_err(|e| format!("server {server:?} is not a NATS address: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let client = options
            .connect(servers)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", settings.servers.join(", ")))?;
        let context = jetstream::ContextBuilder::new()
            .timeout(settings.timeout)
            .build(client);
        if let (Some(name), true) = (&settings.stream, settings.create_stream) {
            context
                .get_or_create_stream(stream::Config {
                    name: name.clone(),
                    subjects: vec![format!(
                        "{}.{}.>",
                        settings.subject_prefix, settings.corp_id
                    )],
                    storage: stream::StorageType::File,
                    ..stream::Config::default()
                })
                .await
                .map_err(|e| format!("cannot create the stream {name}: {e}"))?;
        }
        *slot = Some(context.clone());
        Ok(context)
    }

    /// Publishes `events` in order and waits for every PubAck.
    ///
    /// The client queues publishes while it reconnects and sends them once it is back, while
    /// those it had buffered on the broken connection are lost: messages of a failed attempt
    /// can reach the broker after the ones before them were lost, and after the retry began.
    /// So that they can never be stored out of order, every message of a pipelined attempt
    /// names the one before it (`Nats-Expected-Last-Msg-Id`): the broker stores it only right
    /// after that one, and drops a repeat by its `Nats-Msg-Id` before that check. The first
    /// attempt, and every attempt after a failure, publishes one message at a time instead,
    /// each awaited before the next and naming none, which also recovers when another
    /// publisher wrote to the stream in between.
    pub async fn publish(&self, events: &[StoredEvent]) -> Attempt {
        let context = match self.context().await {
            Ok(context) => context,
            Err(error) => return Attempt::Failed(error),
        };
        // Taken: it stays unknown unless this attempt succeeds.
        let mut previous = self.last_published.lock().await.take();
        let pipelined = previous.is_some();
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let id = match event_id(event) {
                Ok(id) => id,
                Err(error) => return Attempt::Failed(error),
            };
            let subject = self.settings.subject(&event.kind);
            let mut message = PublishMessage::build()
                .payload(Bytes::from(event.body.clone()))
                .header("content-type", "application/cloudevents+json")
                .message_id(&id);
            if let Some(stream) = &self.settings.stream {
                message = message.expected_stream(stream);
            }
            if let (true, Some(previous)) = (pipelined, &previous) {
                message = message.expected_last_message_id(previous);
            }
            let ack = match context.send_publish(subject.clone(), message).await {
                Ok(ack) => ack,
                Err(error) => return Attempt::Failed(self.describe(event.seq, &subject, &error)),
            };
            if pipelined {
                acks.push((event.seq, subject, ack));
            } else if let Err(error) = ack.await {
                return Attempt::Failed(self.describe(event.seq, &subject, &error));
            }
            previous = Some(id);
        }
        for (seq, subject, ack) in acks {
            if let Err(error) = ack.await {
                return Attempt::Failed(self.describe(seq, &subject, &error));
            }
        }
        *self.last_published.lock().await = previous;
        Attempt::Delivered
    }

    fn describe(
        &self,
        seq: i64,
        subject: &str,
        error: &jetstream::context::PublishError,
    ) -> String {
        match error.kind() {
            PublishErrorKind::StreamNotFound => format!(
                "event {seq}: no JetStream stream takes subject {subject}; create one for \
                 `{}.{}.>`{}",
                self.settings.subject_prefix,
                self.settings.corp_id,
                if self.settings.stream.is_some() {
                    ", or set create_stream = true"
                } else {
                    ", or set stream and create_stream = true"
                }
            ),
            PublishErrorKind::TimedOut => format!(
                "event {seq}: no PubAck within {} s (timeout_secs): {error}",
                self.settings.timeout.as_secs()
            ),
            _ => format!("event {seq} on {subject}: {error}"),
        }
    }
}

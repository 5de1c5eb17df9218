//! A host application's connection to the socket: requests and replies, then, once
//! subscribed, events. Every read and write is bounded by [`WAIT`].

use std::path::Path;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::time::timeout;

use super::WAIT;

pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    pub write: OwnedWriteHalf,
    /// The reply to the request it was opened with ([`Client::open`]); null otherwise.
    pub reply: Value,
}

impl Client {
    pub async fn connect(path: &Path) -> Client {
        Client::new(
            timeout(WAIT, UnixStream::connect(path))
                .await
                .expect("connect in time")
                .expect("connect to socket"),
        )
    }

    pub fn new(stream: UnixStream) -> Client {
        let (read, write) = stream.into_split();
        Client {
            // Large enough that reading a long backlog line by line costs few reads.
            reader: BufReader::with_capacity(1 << 16, read),
            write,
            reply: Value::Null,
        }
    }

    /// Connects and sends `request`; its reply is in [`Client::reply`].
    pub async fn open(path: &Path, request: Value) -> Client {
        let mut client = Client::connect(path).await;
        client.send(&request).await;
        client.reply = client.next().await;
        client
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        timeout(WAIT, self.write.write_all(bytes))
            .await
            .expect("send in time")
            .expect("send");
    }

    pub async fn send(&mut self, request: &Value) {
        self.send_raw(format!("{request}\n").as_bytes()).await;
    }

    /// The next line as it came, newline included, into `line`.
    pub async fn raw_line(&mut self, line: &mut Vec<u8>) {
        line.clear();
        let read = timeout(WAIT, self.reader.read_until(b'\n', line))
            .await
            .expect("no line from the daemon in time")
            .expect("read from socket");
        assert!(read > 0, "the daemon closed the connection");
    }

    /// The next line, as JSON.
    pub async fn next(&mut self) -> Value {
        let mut line = Vec::new();
        self.raw_line(&mut line).await;
        serde_json::from_slice(&line).expect("a JSON line")
    }

    pub async fn request(&mut self, request: Value) -> Value {
        self.send(&request).await;
        self.next().await
    }

    /// Acks `seq` for `consumer`; the reply.
    pub async fn ack(&mut self, consumer: &str, seq: i64) -> Value {
        self.request(serde_json::json!({"op": "ack", "consumer": consumer, "seq": seq}))
            .await
    }

    /// Asserts that the other end closes the connection, with nothing more to read.
    pub async fn expect_closed(&mut self) {
        let mut line = Vec::new();
        let next = timeout(WAIT, self.reader.read_until(b'\n', &mut line))
            .await
            .expect("closed in time");
        assert!(
            matches!(next, Ok(0) | Err(_)),
            "got {next:?}: {}",
            String::from_utf8_lossy(&line)
        );
    }

    /// Subscribes and checks the reply; returns the head it announced.
    pub async fn subscribe(&mut self, request: Value) -> i64 {
        let reply = self.request(request).await;
        assert_eq!(reply["ok"], true, "{reply}");
        assert_eq!(reply["op"], "subscribe");
        reply["head"].as_i64().expect("head")
    }

    /// The next `n` lines, which must be events; returns their (seq, type).
    pub async fn events(&mut self, n: usize) -> Vec<(i64, String)> {
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            let event = self.next().await;
            assert_eq!(event["specversion"], "1.0", "not an event: {event}");
            events.push((
                event["seq"].as_i64().expect("seq"),
                event["type"].as_str().expect("type").to_owned(),
            ));
        }
        events
    }

    pub async fn seqs(&mut self, n: usize) -> Vec<i64> {
        self.events(n)
            .await
            .into_iter()
            .map(|(seq, _)| seq)
            .collect()
    }

    /// Events up to and including the next `orgsync.sync.*` outcome event.
    pub async fn run_events(&mut self) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let event = self.next().await;
            let done = event["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("orgsync.sync."));
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

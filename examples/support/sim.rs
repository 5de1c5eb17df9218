//! The standalone simulator's control endpoints (`/_sim/`), as the daemon benchmarks drive
//! them. Included by path (`#[path]`) by each benchmark that needs it.
#![allow(dead_code)]

use serde_json::{json, Value};

/// The standalone simulator's control endpoints, `/_sim/`.
pub struct Sim {
    pub runtime: tokio::runtime::Runtime,
    pub http: reqwest::Client,
    pub base: String,
}

impl Sim {
    pub fn new(base: &str) -> Sim {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Sim {
            runtime,
            http: reqwest::Client::new(),
            base: base.to_owned(),
        }
    }

    /// `GET /_sim/directory`.
    pub fn directory(&self) -> Value {
        self.runtime.block_on(async {
            let response = self
                .http
                .get(format!("{}/_sim/directory", self.base))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "{}", response.status());
            response.json().await.unwrap()
        })
    }

    /// Sets the simulator's `latency_ms` with `PUT /_sim/directory`.
    pub fn set_latency(&self, latency_ms: u64) {
        let mut directory = self.directory();
        if directory["latency_ms"].as_u64().unwrap_or(0) == latency_ms {
            return;
        }
        directory["latency_ms"] = json!(latency_ms);
        self.runtime.block_on(async {
            let response = self
                .http
                .put(format!("{}/_sim/directory", self.base))
                .json(&directory)
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "{}", response.status());
        });
    }
}

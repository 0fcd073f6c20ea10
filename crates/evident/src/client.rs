//! The HTTP client shared by `send`, `query` and `bench`.

use crate::cli::ClientArgs;
use anyhow::{Context, bail};
use std::path::Path;

/// A configured connection to a running service.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: String,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:7600`) using `key`.
    pub fn new(base: &str, key: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            auth: format!("Bearer {}", key.trim()),
        })
    }

    /// A client from command-line arguments: `--key`, EVIDENT_KEY, or the data directory's admin key.
    pub fn from_args(args: &ClientArgs) -> anyhow::Result<Self> {
        let key = match &args.key {
            Some(k) => k.clone(),
            None => read_key_file(&args.data_dir.join(crate::serve::ADMIN_KEY_FILE))?,
        };
        Self::new(&args.url, &key)
    }

    /// POSTs an NDJSON body of events.
    pub async fn post_ndjson(&self, body: Vec<u8>) -> reqwest::Result<reqwest::Response> {
        self.http
            .post(format!("{}/api/v1/events", self.base))
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body)
            .send()
            .await
    }

    /// GETs `path` with query `params`, returning the JSON body or the server's error message.
    pub async fn get_json(
        &self,
        path: &str,
        params: &[(String, String)],
    ) -> anyhow::Result<serde_json::Value> {
        self.call_json(reqwest::Method::GET, path, params).await
    }

    /// POSTs to `path` with query `params` and no body, returning the JSON answer.
    pub async fn post_json(
        &self,
        path: &str,
        params: &[(String, String)],
    ) -> anyhow::Result<serde_json::Value> {
        self.call_json(reqwest::Method::POST, path, params).await
    }

    /// Opens the live stream as server-sent events with query `params`, resuming after
    /// `last_seq` if given; the error names what the server refused.
    pub async fn open_sse(
        &self,
        params: &[(String, String)],
        last_seq: Option<i64>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = self
            .http
            .get(format!("{}/api/v1/stream/sse", self.base))
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .query(params);
        if let Some(seq) = last_seq {
            request = request.header("last-event-id", seq.to_string());
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        if !status.is_success() {
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let message = format!(
                "{status}: {}",
                body["error"]["message"].as_str().unwrap_or("no message")
            );
            if status.is_client_error() {
                return Err(Refused(message).into());
            }
            bail!(message);
        }
        Ok(response)
    }

    async fn call_json(
        &self,
        method: reqwest::Method,
        path: &str,
        params: &[(String, String)],
    ) -> anyhow::Result<serde_json::Value> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .query(params)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .context("the server's answer is not JSON")?;
        if !status.is_success() {
            bail!(
                "{status}: {}",
                body["error"]["message"].as_str().unwrap_or("no message")
            );
        }
        Ok(body)
    }
}

/// The server refused a request (4xx): asking again the same way will not help.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Reads a key file written by `serve` or by hand.
pub fn read_key_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "no API key given (--key or EVIDENT_KEY) and cannot read {}",
            path.display()
        )
    })?;
    Ok(text.trim().to_owned())
}

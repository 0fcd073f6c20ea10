//! `evident send`: upload NDJSON events in batches, with progress and safe retries.
//!
//! Lines without an `id` get a fresh v7 id before sending, so a retried batch is stored
//! once even when the first attempt was committed but its answer was lost.

use crate::cli::SendArgs;
use crate::client::Client;
use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

/// Attempts per batch when the service is unavailable.
const ATTEMPTS: u32 = 6;

#[derive(Default)]
struct Totals {
    stored: u64,
    duplicates: u64,
    rejected: u64,
}

/// Sends the file.
pub async fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    let client = Client::from_args(&args.client)?;
    let reader: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let progress = ProgressBar::new_spinner();
    progress.set_style(
        ProgressStyle::with_template("{spinner} {pos} events sent ({per_sec}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut totals = Totals::default();
    let mut batch: Vec<(usize, String)> = Vec::with_capacity(args.batch);
    for (n, line) in reader.lines().enumerate() {
        let line = line.context("cannot read input")?;
        if line.trim().is_empty() {
            continue;
        }
        batch.push((n + 1, with_id(line)));
        if batch.len() >= args.batch.max(1) {
            send_batch(&client, &mut batch, &mut totals, &progress).await?;
        }
    }
    if !batch.is_empty() {
        send_batch(&client, &mut batch, &mut totals, &progress).await?;
    }
    progress.finish_and_clear();
    let Totals {
        stored,
        duplicates,
        rejected,
    } = totals;
    eprintln!(
        "sent {} events: {stored} stored, {duplicates} already stored, {rejected} rejected",
        stored + duplicates + rejected
    );
    Ok(if rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `line` with an `id` added when it is a JSON object without one; otherwise unchanged
/// (the service reports what is wrong with it).
fn with_id(line: String) -> String {
    match serde_json::from_str::<Value>(&line) {
        Ok(Value::Object(mut map)) if !map.contains_key("id") => {
            map.insert("id".into(), Value::String(uuid::Uuid::now_v7().to_string()));
            Value::Object(map).to_string()
        }
        _ => line,
    }
}

async fn send_batch(
    client: &Client,
    batch: &mut Vec<(usize, String)>,
    totals: &mut Totals,
    progress: &ProgressBar,
) -> anyhow::Result<()> {
    let mut body = Vec::new();
    for (_, line) in batch.iter() {
        body.extend_from_slice(line.as_bytes());
        body.push(b'\n');
    }
    let answer = post_with_retry(client, body).await?;
    totals.stored += answer["stored"].as_u64().unwrap_or(0);
    totals.duplicates += answer["duplicates"].as_u64().unwrap_or(0);
    totals.rejected += answer["rejected"].as_u64().unwrap_or(0);
    for error in answer["errors"].as_array().into_iter().flatten() {
        let index = error["index"].as_u64().unwrap_or(0) as usize;
        let line = batch.get(index).map_or(0, |(n, _)| *n);
        let field = error["field"].as_str().unwrap_or_default();
        let reason = error["reason"].as_str().unwrap_or_default();
        progress.suspend(|| {
            eprintln!(
                "line {line}: {}{reason}",
                if field.is_empty() {
                    String::new()
                } else {
                    format!("{field}: ")
                }
            )
        });
    }
    progress.inc(batch.len() as u64);
    batch.clear();
    Ok(())
}

async fn post_with_retry(client: &Client, body: Vec<u8>) -> anyhow::Result<Value> {
    let mut delay = Duration::from_millis(250);
    for attempt in 1..=ATTEMPTS {
        let retry_reason = match client.post_ndjson(body.clone()).await {
            Ok(response) => {
                let status = response.status();
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                if status.is_success()
                    || status == reqwest::StatusCode::BAD_REQUEST && answer.get("errors").is_some()
                {
                    return Ok(answer);
                }
                let message = answer["error"]["message"]
                    .as_str()
                    .unwrap_or("no message")
                    .to_owned();
                if status != reqwest::StatusCode::SERVICE_UNAVAILABLE
                    && status != reqwest::StatusCode::TOO_MANY_REQUESTS
                {
                    bail!("the service refused the batch: {status}: {message}");
                }
                format!("{status}: {message}")
            }
            Err(e) => e.to_string(),
        };
        if attempt == ATTEMPTS {
            bail!("gave up after {ATTEMPTS} attempts: {retry_reason}");
        }
        tracing::warn!(attempt, reason = %retry_reason, "retrying batch");
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    unreachable!("the loop returns or bails on its last attempt")
}

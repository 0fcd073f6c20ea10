//! `evident tail`: follows the live stream from the terminal, as a table or NDJSON.
//!
//! Reads the server-sent events stream; after a dropped connection it connects again
//! with `Last-Event-ID` set to the last event printed, so nothing is missed or printed
//! twice; Ctrl-C stops it.

use crate::cli::{Format, TailArgs};
use crate::client::{Client, Refused};
use anyhow::bail;
use serde_json::Value;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Longest pause between two attempts to connect again.
const MAX_PAUSE: Duration = Duration::from_secs(10);

/// Runs until Ctrl-C, or until the server refuses the stream.
pub async fn run(args: Box<TailArgs>) -> anyhow::Result<ExitCode> {
    let client = Client::from_args(&args.client)?;
    let params = params(&args)?;
    let mut last = args.since_seq;
    let mut printer = Printer::new(args.format);
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    let mut pause = Duration::from_millis(250);
    loop {
        let followed = tokio::select! {
            _ = &mut stop => return Ok(ExitCode::SUCCESS),
            result = follow(&client, &params, &mut last, &mut printer) => result,
        };
        match followed {
            Ok(()) => pause = Duration::from_millis(250),
            Err(e) if e.downcast_ref::<Refused>().is_some() => return Err(e),
            Err(e) => eprintln!(
                "evident tail: {e:#}; connecting again in {} ms{}",
                pause.as_millis(),
                last.map(|s| format!(" (resuming after seq {s})"))
                    .unwrap_or_default()
            ),
        }
        tokio::select! {
            _ = &mut stop => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// One connection: prints its messages until it ends; `last` follows the events printed.
async fn follow(
    client: &Client,
    params: &[(String, String)],
    last: &mut Option<i64>,
    printer: &mut Printer,
) -> anyhow::Result<()> {
    let mut response = client.open_sse(params, *last).await?;
    let mut buffer = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        buffer.extend_from_slice(&chunk);
        while let Some(end) = find_blank_line(&buffer) {
            let block: Vec<u8> = buffer.drain(..end).collect();
            if let Some((kind, data)) = parse_block(&String::from_utf8_lossy(&block)) {
                printer.print(&kind, &data, last);
            }
        }
    }
    bail!("the stream ended")
}

/// Where the first SSE block of `buffer` ends (past its blank line).
fn find_blank_line(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|at| at + 2)
}

/// An SSE block's event name and JSON data; `None` for comments and keep-alives.
fn parse_block(block: &str) -> Option<(String, Value)> {
    let mut kind = String::from("message");
    let mut data = String::new();
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            kind = value.trim().to_owned();
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    if data.is_empty() {
        return None;
    }
    serde_json::from_str(&data).ok().map(|d| (kind, d))
}

fn params(args: &TailArgs) -> anyhow::Result<Vec<(String, String)>> {
    let mut params = Vec::new();
    let lists = [
        ("type", &args.event_type),
        ("category", &args.category),
        ("user", &args.user),
        ("agent", &args.agent),
        ("facility", &args.facility),
        ("source_ip", &args.source_ip),
    ];
    for (name, values) in lists {
        params.extend(values.iter().map(|v| (name.to_owned(), v.clone())));
    }
    if let Some(min) = &args.min_severity {
        params.push(("min_severity".into(), min.clone()));
    }
    params.extend(crate::query::data_params(&args.data)?);
    if args.no_findings {
        params.push(("findings".into(), "false".into()));
    }
    Ok(params)
}

/// Prints messages as a table (with a header once) or as NDJSON.
struct Printer {
    format: Format,
    header: bool,
}

impl Printer {
    fn new(format: Format) -> Self {
        Self {
            format,
            header: false,
        }
    }

    fn print(&mut self, kind: &str, message: &Value, last: &mut Option<i64>) {
        if kind == "security_event" {
            *last = message["seq"].as_i64().or(*last);
        }
        let mut out = std::io::stdout().lock();
        match self.format {
            Format::Json => {
                if kind != "heartbeat" {
                    writeln!(out, "{message}").ok();
                }
            }
            Format::Table => {
                if !self.header {
                    writeln!(
                        out,
                        "{:<8} {:<27} {:<8} {:<30} {:<16} {:<12} detail",
                        "seq", "time", "severity", "type", "user", "facility"
                    )
                    .ok();
                    self.header = true;
                }
                if let Some(line) = table_line(kind, message) {
                    writeln!(out, "{line}").ok();
                }
            }
        }
        out.flush().ok();
    }
}

/// One table row for a message; heartbeats print nothing.
fn table_line(kind: &str, message: &Value) -> Option<String> {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let seq = message["seq"].to_string();
    match kind {
        "security_event" => {
            let e = &message["event"];
            Some(format!(
                "{:<8} {:<27} {:<8} {:<30} {:<16} {:<12} {}",
                seq,
                s(&e["time"]),
                s(&e["severity"]),
                s(&e["type"]),
                s(&e["actor"]["user_id"]),
                s(&e["facility"]),
                e["data"].as_object().map_or(String::new(), |d| {
                    let text = Value::Object(d.clone()).to_string();
                    text.chars().take(60).collect()
                })
            ))
        }
        "finding" => {
            let f = &message["finding"];
            Some(format!(
                "{:<8} {:<27} {:<8} {:<30} {:<16} {:<12} FINDING {} ({}, {} events, {})",
                seq,
                s(&f["last_seen"]),
                s(&f["severity"]),
                s(&f["rule_id"]),
                "-",
                s(&f["facility"]),
                s(&f["title"]),
                s(&f["group_key"]),
                f["count"],
                s(&f["status"])
            ))
        }
        "lagged" | "closed" => Some(format!(
            "{:<8} {}",
            seq,
            message["message"]
                .as_str()
                .or(message["reason"].as_str())
                .unwrap_or(kind)
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn blocks_are_read_with_their_event_name_and_data() {
        let block = "event: security_event\nid: 7\ndata: {\"seq\":7}\n\n";
        assert_eq!(
            parse_block(block),
            Some(("security_event".into(), serde_json::json!({"seq": 7})))
        );
        assert_eq!(parse_block(": keep-alive\n\n"), None);
        assert_eq!(find_blank_line(b"a\n\nb"), Some(3));
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panicking(text in "[ -~\\n]{0,200}") {
            let _ = parse_block(&text);
            let _ = find_blank_line(text.as_bytes());
        }
    }
}

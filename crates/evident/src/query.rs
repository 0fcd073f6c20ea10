//! `evident query`: search events and print them as JSON lines or a table.

use crate::cli::{Format, QueryArgs};
use crate::client::Client;
use anyhow::bail;
use serde_json::Value;
use std::process::ExitCode;

/// Runs the query, following cursors until `--limit` events are printed.
pub async fn run(args: Box<QueryArgs>) -> anyhow::Result<ExitCode> {
    let client = Client::from_args(&args.client)?;
    let mut params = params(&args)?;
    let mut remaining = args.limit;
    if args.format == Format::Table {
        println!(
            "{:<27} {:<8} {:<28} {:<14} {:<15} id",
            "time", "severity", "type", "user", "ip"
        );
    }
    while remaining > 0 {
        let mut page_params = params.clone();
        page_params.push(("limit".into(), remaining.min(1000).to_string()));
        let page = client.get_json("/api/v1/events", &page_params).await?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        for event in &events {
            print_event(event, args.format);
        }
        remaining = remaining.saturating_sub(events.len());
        match page["next_cursor"].as_str() {
            Some(cursor) if !events.is_empty() => {
                params.retain(|(k, _)| k != "cursor");
                params.push(("cursor".into(), cursor.to_owned()));
            }
            _ => break,
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn params(args: &QueryArgs) -> anyhow::Result<Vec<(String, String)>> {
    let named = [
        ("type", &args.event_type),
        ("category", &args.category),
        ("severity", &args.severity),
        ("min_severity", &args.min_severity),
        ("user_id", &args.user_id),
        ("source_ip", &args.source_ip),
        ("agent_id", &args.agent_id),
        ("facility", &args.facility),
        ("correlation_id", &args.correlation_id),
        ("from", &args.from),
        ("to", &args.to),
        ("q", &args.text),
    ];
    let mut params: Vec<(String, String)> = named
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_owned(), v.clone()?)))
        .collect();
    params.extend(data_params(&args.data)?);
    Ok(params)
}

/// `--data PATH=VALUE` options as `data.PATH` query parameters.
pub fn data_params(conditions: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    conditions
        .iter()
        .map(|condition| match condition.split_once('=') {
            Some((path, value)) => Ok((format!("data.{path}"), value.to_owned())),
            None => bail!("--data {condition:?} is not PATH=VALUE"),
        })
        .collect()
}

fn print_event(event: &Value, format: Format) {
    match format {
        Format::Json => println!("{event}"),
        Format::Table => {
            let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
            println!(
                "{:<27} {:<8} {:<28} {:<14} {:<15} {}",
                s(&event["time"]),
                s(&event["severity"]),
                s(&event["type"]),
                s(&event["actor"]["user_id"]),
                s(&event["actor"]["ip"]),
                s(&event["id"])
            );
        }
    }
}

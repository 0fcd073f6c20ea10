//! Filters, pagination and stats through the real server.

use super::common::Server;
use serde_json::{Value, json};
use std::collections::HashSet;

async fn seed(server: &Server) {
    let mut events = Vec::new();
    for i in 0..60 {
        let (t, sev) = match i % 4 {
            0 => ("auth.login.failure", "warning"),
            1 => ("auth.login.success", "info"),
            2 => ("quality.check", "high"),
            _ => ("equipment.status", "critical"),
        };
        events.push(json!({
            "type": t, "severity": sev, "time": format!("2025-01-01T00:{:02}:00Z", i),
            "actor": {"user_id": format!("u{}", i % 5), "ip": format!("10.0.0.{}", i % 3)},
            "agent_id": "agent-1", "facility": if i % 2 == 0 { "plant-1" } else { "plant-2" },
            "correlation_id": format!("c{}", i % 10), "data": {"station_id": format!("STN-{}", i % 6), "n": i}
        }));
    }
    let (status, body) = server.post_json(&Value::Array(events)).await;
    assert_eq!(status, 202, "{body}");
}

async fn count(server: &Server, query: &str) -> usize {
    server
        .get_ok(&format!("/api/v1/events?limit=1000&{query}"))
        .await["events"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn filters_select_exactly_the_matching_events() {
    let (_dir, server) = Server::start_fresh();
    seed(&server).await;
    assert_eq!(count(&server, "type=auth.*").await, 30);
    assert_eq!(count(&server, "type=auth.login.failure").await, 15);
    assert_eq!(count(&server, "category=manufacturing").await, 30);
    assert_eq!(count(&server, "severity=critical").await, 15);
    assert_eq!(count(&server, "min_severity=high").await, 30);
    assert_eq!(count(&server, "min_severity=warn").await, 45);
    assert_eq!(count(&server, "user_id=u3").await, 12);
    assert_eq!(count(&server, "source_ip=10.0.0.2").await, 20);
    assert_eq!(count(&server, "agent_id=agent-1").await, 60);
    assert_eq!(count(&server, "facility=plant-2").await, 30);
    assert_eq!(count(&server, "correlation_id=c7").await, 6);
    assert_eq!(
        count(&server, "from=2025-01-01T00:10:00Z&to=2025-01-01T00:20:00Z").await,
        10
    );
    assert_eq!(count(&server, "data.station_id=STN-4").await, 10);
    assert_eq!(count(&server, "data.n=42").await, 1);
    assert_eq!(
        count(
            &server,
            "type=auth.*&facility=plant-1&data.station_id=STN-0"
        )
        .await,
        5
    );
}

#[tokio::test]
async fn cursor_pages_cover_everything_once_newest_first() {
    let (_dir, server) = Server::start_fresh();
    seed(&server).await;
    let mut seen = Vec::new();
    let mut path = "/api/v1/events?limit=7".to_owned();
    loop {
        let page = server.get_ok(&path).await;
        for e in page["events"].as_array().unwrap() {
            seen.push(e["time"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/events?limit=7&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 60);
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        60,
        "no event twice"
    );
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first");
}

#[tokio::test]
async fn stats_group_and_bucket() {
    let (_dir, server) = Server::start_fresh();
    seed(&server).await;
    let stats = server.get_ok("/api/v1/stats?from=2025-01-01T00:00:00Z&to=2025-01-01T01:00:00Z&group_by=type,severity&interval=15m").await;
    assert_eq!(stats["total"], 60);
    let groups = stats["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 4);
    assert!(groups.iter().all(|g| g["count"] == 15));
    assert!(
        groups
            .iter()
            .any(|g| g["type"] == "quality.check" && g["severity"] == "high")
    );
    let series: Vec<u64> = stats["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .collect();
    assert_eq!(series, vec![15, 15, 15, 15]);
    assert_eq!(stats["series"][1]["start"], "2025-01-01T00:15:00Z");

    let by_facility = server
        .get_ok("/api/v1/stats?from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z&group_by=facility")
        .await;
    assert_eq!(by_facility["groups"].as_array().unwrap().len(), 2);
}

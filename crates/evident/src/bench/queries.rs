//! `evident bench-queries`: the query API's common filters against a loaded store, timed
//! over HTTP one request at a time (p50 / p99 / max per filter).

use super::workload::{MEAN_GAP, TYPES};
use crate::client::Client;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `evident bench-queries`.
#[derive(Debug, clap::Args)]
pub struct QueryBenchArgs {
    /// Base URL of a running service holding a store filled by `evident bench-load`.
    #[arg(long, default_value = "http://127.0.0.1:7600")]
    pub url: String,
    /// A read key.
    #[arg(long, env = "EVIDENT_KEY")]
    pub key: String,
    /// Events `bench-load` loaded (sets the time span queries pick their windows in).
    #[arg(long, default_value_t = 10_000_000)]
    pub events: usize,
    /// Requests per filter.
    #[arg(long, default_value_t = 200)]
    pub rounds: usize,
    /// Print one JSON line with the figures as well.
    #[arg(long)]
    pub json: bool,
}

/// The filters measured: a name and a function giving one request's parameters.
type Filter = (
    &'static str,
    fn(&mut StdRng, OffsetDateTime, time::Duration) -> Vec<(String, String)>,
);

const FILTERS: [Filter; 6] = [
    ("newest page", |_, _, _| vec![]),
    ("by type", |r, _, _| {
        let t = TYPES[r.random_range(0..TYPES.len())].0;
        vec![("type".into(), t.into())]
    }),
    ("by user over a day", |r, end, span| {
        let to = random_end(r, end, span);
        vec![
            (
                "user_id".into(),
                format!("user_{:05}", r.random_range(0..5000)),
            ),
            ("from".into(), rfc3339(to - time::Duration::days(1))),
            ("to".into(), rfc3339(to)),
        ]
    }),
    ("by severity over a week", |r, end, span| {
        let to = random_end(r, end, span);
        let severity = ["critical", "high", "medium"][r.random_range(0..3)];
        vec![
            ("severity".into(), severity.into()),
            ("from".into(), rfc3339(to - time::Duration::days(7))),
            ("to".into(), rfc3339(to)),
        ]
    }),
    ("by data field (station)", |r, _, _| {
        let line = ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H'][r.random_range(0..8)];
        vec![(
            "data.station_id".into(),
            format!("STN-{line}-{:02}", r.random_range(1..=24)),
        )]
    }),
    ("by data field (key id)", |r, _, _| {
        vec![(
            "data.key_id".into(),
            format!("kms-key-{:04}", r.random_range(1..=300)),
        )]
    }),
];

fn random_end(r: &mut StdRng, end: OffsetDateTime, span: time::Duration) -> OffsetDateTime {
    let back = r.random_range(0..=span.whole_seconds().max(1));
    end - time::Duration::seconds(back)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Runs every filter `rounds` times and prints the latency table.
pub async fn run(args: QueryBenchArgs) -> anyhow::Result<std::process::ExitCode> {
    let client = Client::new(&args.url, &args.key)?;
    let newest = client
        .get_json("/api/v1/events", &[("limit".into(), "1".into())])
        .await?;
    let Some(end) = newest["events"][0]["time"]
        .as_str()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
    else {
        anyhow::bail!(
            "the store at {} holds no events; run `evident bench-load` first",
            args.url
        );
    };
    let span = MEAN_GAP * i32::try_from(args.events).unwrap_or(i32::MAX);
    let mut rng = StdRng::seed_from_u64(11);
    let mut summary = serde_json::Map::new();
    println!("| filter | requests | p50 | p99 | max | mean events returned |");
    println!("|---|---|---|---|---|---|");
    for (name, params) in FILTERS {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
        let mut returned = 0usize;
        for _ in 0..args.rounds {
            let mut query = params(&mut rng, end, span);
            query.push(("limit".into(), "100".into()));
            let started = std::time::Instant::now();
            let page = client.get_json("/api/v1/events", &query).await?;
            hist.saturating_record(started.elapsed().as_micros() as u64);
            returned += page["events"].as_array().map_or(0, Vec::len);
        }
        let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
        let mean = returned as f64 / args.rounds.max(1) as f64;
        println!(
            "| {name} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {mean:.0} |",
            args.rounds,
            ms(0.5),
            ms(0.99),
            hist.max() as f64 / 1000.0
        );
        summary.insert(
            name.into(),
            serde_json::json!({"p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": hist.max() as f64 / 1000.0, "mean_returned": mean}),
        );
    }
    if args.json {
        println!("{}", serde_json::Value::Object(summary));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

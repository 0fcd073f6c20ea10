//! The conformance suite every backend passes: behaviour the API relies on, written once
//! against [`EventStore`] and run against each backend.

#![allow(missing_docs)]

use crate::query::{Cursor, DataFilter, EventQuery, GroupField, StatsQuery, TypeFilter};
use crate::{Appended, EventStore, FindingStatus, FindingStore, Hit, StatusChange};
use evident_model::{Actor, Category, EncodedEvent, Event, Outcome, Priority, Severity};
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

const BASE: OffsetDateTime = datetime!(2024-06-01 00:00:00 UTC);

/// An event of `event_type` at `BASE + minutes`.
pub fn event(event_type: &str, minutes: i64, severity: Severity) -> EncodedEvent {
    let time = BASE + time::Duration::minutes(minutes);
    EncodedEvent::new(Event {
        id: Uuid::new_v4(),
        time,
        received_at: time,
        event_type: event_type.into(),
        category: Category::for_type(event_type),
        severity,
        priority: Priority::from(severity),
        outcome: Outcome::Unknown,
        source: Some("mes-api".into()),
        agent_id: None,
        actor: Actor {
            user_id: Some(format!("user_{}", minutes % 3)),
            ip: Some("10.0.0.1".into()),
            ..Actor::default()
        },
        target: Default::default(),
        facility: Some(
            if minutes % 2 == 0 {
                "plant-1"
            } else {
                "plant-2"
            }
            .into(),
        ),
        correlation_id: None,
        data: json!({"station_id": format!("STN-{minutes}"), "n": minutes})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        context: Default::default(),
        tags: vec![],
        compliance: vec![],
        sealed: None,
        service_record: false,
    })
}

fn all() -> EventQuery {
    EventQuery {
        limit: 1000,
        ..EventQuery::default()
    }
}

/// Sequence numbers are gap-free across batches, and a repeated id is stored once.
pub async fn append_assigns_gap_free_seq_and_dedups(store: &dyn EventStore) {
    let first: Vec<_> = (0..5)
        .map(|i| event("user.login", i, Severity::Info))
        .collect();
    let out = store.append(first.clone().into()).await.unwrap();
    let seqs: Vec<i64> = out
        .iter()
        .map(|a| match a {
            Appended::Stored(s) => *s,
            Appended::Duplicate => -1,
        })
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gap-free: {seqs:?}"
    );

    let again = vec![
        first[1].clone(),
        event("user.logout", 6, Severity::Info),
        first[1].clone(),
    ];
    let out2 = store.append(again.into()).await.unwrap();
    assert_eq!(
        out2,
        vec![
            Appended::Duplicate,
            Appended::Stored(seqs[4] + 1),
            Appended::Duplicate
        ]
    );

    let page = store.query(all()).await.unwrap();
    assert_eq!(page.events.len(), 6);
    let stored = store.get(first[1].event.id, None).await.unwrap().unwrap();
    assert_eq!(
        stored.bytes, first[1].bytes,
        "the canonical bytes come back unchanged"
    );
    assert!(store.get(Uuid::new_v4(), None).await.unwrap().is_none());
}

/// Filters select exactly the matching events, newest first, and pages never overlap.
pub async fn query_filters_and_paginates(store: &dyn EventStore) {
    let mut batch = Vec::new();
    for i in 0..30 {
        let (t, sev) = match i % 3 {
            0 => ("auth.login.failure", Severity::Medium),
            1 => ("auth.logout", Severity::Info),
            _ => ("quality.check", Severity::High),
        };
        batch.push(event(t, i, sev));
    }
    store.append(batch.into()).await.unwrap();

    let count = |q: EventQuery| async move {
        store
            .query(EventQuery { limit: 1000, ..q })
            .await
            .unwrap()
            .events
            .len()
    };
    assert_eq!(
        count(EventQuery {
            event_type: Some(TypeFilter::Prefix("auth.".into())),
            ..all()
        })
        .await,
        20
    );
    assert_eq!(
        count(EventQuery {
            event_type: Some(TypeFilter::Exact("auth.logout".into())),
            ..all()
        })
        .await,
        10
    );
    assert_eq!(
        count(EventQuery {
            min_severity: Some(Severity::Medium),
            ..all()
        })
        .await,
        20
    );
    assert_eq!(
        count(EventQuery {
            severity: Some(Severity::High),
            ..all()
        })
        .await,
        10
    );
    assert_eq!(
        count(EventQuery {
            category: Some(Category::Manufacturing),
            ..all()
        })
        .await,
        10
    );
    assert_eq!(
        count(EventQuery {
            user_id: Some("user_0".into()),
            ..all()
        })
        .await,
        10
    );
    assert_eq!(
        count(EventQuery {
            facility: Some("plant-1".into()),
            ..all()
        })
        .await,
        15
    );
    assert_eq!(
        count(EventQuery {
            scope: Some(vec!["plant-2".into()]),
            ..all()
        })
        .await,
        15
    );
    let from = evident_model::unix_micros(BASE + time::Duration::minutes(10));
    let to = evident_model::unix_micros(BASE + time::Duration::minutes(20));
    assert_eq!(
        count(EventQuery {
            from: Some(from),
            to: Some(to),
            ..all()
        })
        .await,
        10
    );
    let data = |v: &str| {
        vec![DataFilter {
            path: vec!["n".into()],
            value: v.into(),
        }]
    };
    assert_eq!(
        count(EventQuery {
            data: data("7"),
            ..all()
        })
        .await,
        1
    );
    let station = vec![DataFilter {
        path: vec!["station_id".into()],
        value: "STN-7".into(),
    }];
    assert_eq!(
        count(EventQuery {
            data: station,
            ..all()
        })
        .await,
        1
    );

    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = store
            .query(EventQuery {
                limit: 7,
                cursor,
                ..EventQuery::default()
            })
            .await
            .unwrap();
        seen.extend(page.events.iter().map(|e| e.seq));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 30, "every event exactly once across pages");
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first (times rise with seq here)");
}

/// Stats count per group and per bucket, and the two agree.
pub async fn stats_count_groups_and_buckets(store: &dyn EventStore) {
    let batch: Vec<_> = (0..120)
        .map(|i| {
            event(
                if i % 4 == 0 {
                    "access.denied"
                } else {
                    "user.login"
                },
                i,
                if i % 4 == 0 {
                    Severity::High
                } else {
                    Severity::Info
                },
            )
        })
        .collect();
    store.append(batch.into()).await.unwrap();
    let q = StatsQuery {
        from: evident_model::unix_micros(BASE),
        to: evident_model::unix_micros(BASE + time::Duration::hours(2)),
        group_by: vec![GroupField::Type, GroupField::Severity],
        interval: 3_600_000_000,
        scope: None,
    };
    let stats = store.stats(q).await.unwrap();
    assert_eq!(stats.total, 120);
    assert_eq!(stats.groups.len(), 2);
    assert_eq!(
        stats.groups[0].key,
        vec![Some("user.login".to_owned()), Some("info".to_owned())]
    );
    assert_eq!(stats.groups[0].count, 90);
    assert_eq!(stats.groups[1].count, 30);
    assert_eq!(
        stats.groups[1].key,
        vec![Some("access.denied".to_owned()), Some("high".to_owned())]
    );
    assert_eq!(
        stats.series.iter().map(|b| b.count).collect::<Vec<_>>(),
        vec![60, 60]
    );
    // Each bucket says how many of each severity (info, low, medium, high, critical).
    assert_eq!(
        stats
            .series
            .iter()
            .map(|b| b.by_severity)
            .collect::<Vec<_>>(),
        vec![[45, 0, 0, 15, 0], [45, 0, 0, 15, 0]]
    );
}

/// Dead letters are kept with their error, listed oldest first, and removable.
pub async fn dead_letters_round_trip(store: &dyn EventStore) {
    let a = event("a.b", 1, Severity::Info);
    let b = event("a.c", 2, Severity::High);
    store.dead_letter(&a, "refused: reason one").await.unwrap();
    store.dead_letter(&b, "refused: reason two").await.unwrap();
    let listed = store.dead_letters(10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].bytes, a.bytes);
    assert_eq!(listed[1].error, "refused: reason two");
    store.remove_dead_letters(vec![listed[0].id]).await.unwrap();
    let left = store.dead_letters(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].bytes, b.bytes);
}

/// Folds are recorded once per id; summarizing counts exactly the open folds, stores the
/// summary, and closes the window (a second summarize finds nothing).
pub async fn folds_summarize_exactly_once(store: &dyn EventStore) {
    let original = event("equipment.status", 1, Severity::Low);
    store.append(vec![original.clone()].into()).await.unwrap();
    let into = original.event.id;
    let folded: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let fresh = store
        .append_folds(folded.iter().map(|f| (*f, into)).collect())
        .await
        .unwrap();
    assert_eq!(fresh, vec![true; 5]);
    let again = store.append_folds(vec![(folded[0], into)]).await.unwrap();
    assert_eq!(again, vec![false], "a retried fold counts once");
    assert_eq!(store.fold_target(folded[3]).await.unwrap(), Some(into));
    assert_eq!(
        store.fold_target(into).await.unwrap(),
        None,
        "stored, not folded"
    );
    assert_eq!(store.open_fold_windows().await.unwrap(), vec![into]);
    let summary = event("evident.dedup.summary", 2, Severity::Info);
    let summary_id = summary.event.id;
    let built = store
        .summarize_folds(
            into,
            Box::new(move |n| {
                assert_eq!(n, 5);
                summary
            }),
        )
        .await
        .unwrap();
    assert!(matches!(built, Some((5, Appended::Stored(_)))), "{built:?}");
    assert!(store.get(summary_id, None).await.unwrap().is_some());
    assert!(store.open_fold_windows().await.unwrap().is_empty());
    let none = store
        .summarize_folds(into, Box::new(|_| panic!("no open folds: no summary")))
        .await
        .unwrap();
    assert!(none.is_none());
}

/// A critical event journaled again (a client's retry) is reported as a repeat, whether
/// it is still in the journal or already stored.
pub async fn journal_reports_retried_critical_events(store: &dyn EventStore) {
    let critical = event("safety.override", 1, Severity::Critical);
    let other = event("safety.override", 2, Severity::Critical);
    let first = store
        .journal_critical(vec![critical.clone()].into())
        .await
        .unwrap();
    assert_eq!(first, vec![true]);
    let retry = store
        .journal_critical(vec![critical.clone(), other.clone()].into())
        .await
        .unwrap();
    assert_eq!(retry, vec![false, true], "still in the journal: a repeat");
    store
        .append(vec![critical.clone(), other.clone()].into())
        .await
        .unwrap();
    store
        .forget_journaled(vec![critical.event.id, other.event.id])
        .await
        .unwrap();
    let after = store
        .journal_critical(vec![critical.clone()].into())
        .await
        .unwrap();
    assert_eq!(after, vec![false], "already stored: a repeat");
}

/// What [`side_tables`] made: the events, the folds into the first, and the finding
/// the other two are evidence of.
pub struct SideTables {
    /// The stored events.
    pub events: Vec<Uuid>,
    /// Folded ids (into `events[0]`).
    pub folded: Vec<Uuid>,
    /// The finding, acknowledged.
    pub finding: Uuid,
}

/// Fills the side tables through the store (folds, a finding with evidence, a status
/// change), each change recorded in the log; the log then checks clean.
pub async fn side_tables<S: EventStore + FindingStore>(store: &S) -> SideTables {
    let stored: Vec<EncodedEvent> = (0..3)
        .map(|i| event("auth.login.failure", i, Severity::Medium))
        .collect();
    let events: Vec<Uuid> = stored.iter().map(|e| e.event.id).collect();
    store.append(stored.into()).await.unwrap();
    let folded: Vec<Uuid> = (0..2).map(|_| Uuid::new_v4()).collect();
    store
        .append_folds(folded.iter().map(|f| (*f, events[0])).collect())
        .await
        .unwrap();
    let at = BASE + time::Duration::minutes(2);
    let hit = Hit {
        rule_id: "rule-1".into(),
        title: "Brute force".into(),
        severity: Severity::High,
        group_key: "actor.user_id=ps_u".into(),
        tags: vec![],
        facility: None,
        events: events[1..].to_vec(),
        firings: 1,
        first: at,
        last: at,
    };
    let finding = store.record_hits(vec![hit], 3).await.unwrap()[0];
    let change = StatusChange {
        status: FindingStatus::Acknowledged,
        by: "key 1".into(),
        at: 0,
    };
    store
        .set_finding_status(finding, change, None)
        .await
        .unwrap()
        .expect("the finding exists");
    SideTables {
        events,
        folded,
        finding,
    }
}

/// The ids of every event `query` finds, paging through its cursors to the end.
async fn all_pages(store: &dyn EventStore, query: EventQuery) -> Vec<Uuid> {
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .query(EventQuery {
                cursor,
                ..query.clone()
            })
            .await
            .unwrap();
        seen.extend(
            page.events
                .iter()
                .map(|e| serde_json::from_slice::<Event>(&e.bytes).unwrap().id),
        );
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return seen,
        }
    }
}

/// A data filter pages newest first like any other, within a time range, with numbers
/// and numeric-looking strings compared as the filter's rules say.
/// `text` finds events by what their message contains, ASCII case aside, and combines
/// with the other filters.
pub async fn text_finds_messages(store: &dyn EventStore) {
    let messages = [
        "eth0: link up",
        "eth1: Link DOWN",
        "disk /dev/sda1 full",
        "LINK flapping",
    ];
    let batch: Vec<EncodedEvent> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut e = event(
                if i < 2 { "log.syslog" } else { "log.other" },
                i as i64,
                Severity::Info,
            )
            .event;
            e.data.insert("message".into(), json!(m));
            EncodedEvent::new(e)
        })
        .chain(std::iter::once(event("log.syslog", 9, Severity::Info)))
        .collect();
    store.append(batch.into()).await.unwrap();
    let found = |text: &str, event_type: Option<&str>| {
        let q = EventQuery {
            text: Some(text.into()),
            event_type: event_type.map(|t| TypeFilter::Exact(t.into())),
            ..all()
        };
        async move {
            let page = store.query(q).await.unwrap();
            let mut texts: Vec<String> = page
                .events
                .iter()
                .map(|s| {
                    let e: Event = serde_json::from_slice(&s.bytes).unwrap();
                    e.data["message"].as_str().unwrap().to_owned()
                })
                .collect();
            texts.sort();
            texts
        }
    };
    assert_eq!(
        found("link", None).await,
        ["LINK flapping", "eth0: link up", "eth1: Link DOWN"]
    );
    assert_eq!(
        found("LINK", Some("log.syslog")).await,
        ["eth0: link up", "eth1: Link DOWN"]
    );
    assert_eq!(found("/dev/sda1", None).await, ["disk /dev/sda1 full"]);
    assert!(found("nowhere", None).await.is_empty());
    // LIKE's wildcards are plain text here.
    assert!(found("%", None).await.is_empty());
    assert!(found("_", None).await.is_empty());
}

pub async fn data_filters_page_newest_first(store: &dyn EventStore) {
    let mut expected = Vec::new();
    let mut batch = Vec::new();
    for minutes in 0..40 {
        let mut e = event("station.operation", minutes, Severity::Info).event;
        let line = if minutes % 3 == 0 { "L1" } else { "L2" };
        e.data.insert("line".into(), json!({ "id": line }));
        e.data.insert("count".into(), json!(minutes % 4));
        e.data
            .insert("code".into(), json!(format!("{}", minutes % 4)));
        let encoded = EncodedEvent::new(e);
        if line == "L1" && (5..35).contains(&minutes) {
            expected.push(encoded.event.id);
        }
        batch.push(encoded);
    }
    store.append(batch.into()).await.unwrap();
    expected.reverse();
    let filter = |path: &[&str], value: &str| DataFilter {
        path: path.iter().map(|s| s.to_string()).collect(),
        value: value.into(),
    };
    let seen = all_pages(
        store,
        EventQuery {
            data: vec![filter(&["line", "id"], "L1")],
            from: Some(evident_model::unix_micros(
                BASE + time::Duration::minutes(5),
            )),
            to: Some(evident_model::unix_micros(
                BASE + time::Duration::minutes(35),
            )),
            limit: 4,
            ..EventQuery::default()
        },
    )
    .await;
    assert_eq!(seen, expected, "every match once, newest first");
    let count_of = |f: DataFilter| async move {
        store
            .query(EventQuery {
                data: vec![f],
                ..all()
            })
            .await
            .unwrap()
            .events
            .len()
    };
    // 10 events each have count 2 (a number) and code "2" (a string): "2" finds both,
    // "2.0" finds the number only, as the embedded store has always compared.
    assert_eq!(count_of(filter(&["count"], "2")).await, 10);
    assert_eq!(count_of(filter(&["code"], "2")).await, 10);
    assert_eq!(count_of(filter(&["count"], "2.0")).await, 10);
    assert_eq!(count_of(filter(&["code"], "2.0")).await, 0);
    assert_eq!(
        count_of(filter(&["line"], "L1")).await,
        0,
        "objects are not values"
    );
}

/// Events for [`data_filters_agree_with_a_scan`]: `n` events from `start` on, in times
/// that mostly grow but often arrive late, with common, rare and numeric data values.
pub fn data_mix(start: i64, n: i64) -> Vec<EncodedEvent> {
    (start..start + n)
        .map(|i| {
            // A fixed scramble: about one event in five is up to 90 minutes late.
            let late = if (i * 7919) % 5 == 0 {
                (i * 31) % 90
            } else {
                0
            };
            let kind = if i % 3 == 0 {
                "quality.check"
            } else {
                "station.operation"
            };
            let mut e = event(kind, i - late, Severity::Info).event;
            e.data.insert("k".into(), json!(format!("v{}", i % 7)));
            e.data
                .insert("rare".into(), json!(if i % 97 == 0 { "yes" } else { "no" }));
            e.data.insert("num".into(), json!(i % 5));
            EncodedEvent::new(e)
        })
        .collect()
}

/// Appends `events` in batches of varying size; returns each with its sequence number.
pub async fn append_in_batches(
    store: &dyn EventStore,
    events: Vec<EncodedEvent>,
) -> Vec<(i64, Event)> {
    let mut stored = Vec::new();
    let mut rest = events.as_slice();
    let mut size = 1;
    while !rest.is_empty() {
        let (batch, tail) = rest.split_at(size.min(rest.len()));
        let out = store.append(batch.to_vec().into()).await.unwrap();
        for (e, a) in batch.iter().zip(out) {
            let Appended::Stored(seq) = a else {
                panic!("fresh ids only")
            };
            stored.push((seq, e.event.clone()));
        }
        rest = tail;
        size = size % 53 + 7;
    }
    stored
}

/// Every data filter query, paged to the end with and without a time range and a type,
/// returns exactly what a full scan of `stored` finds, newest first.
pub async fn data_filters_agree_with_a_scan(store: &dyn EventStore, stored: &[(i64, Event)]) {
    let at = |minutes: i64| evident_model::unix_micros(BASE + time::Duration::minutes(minutes));
    let span = stored.len() as i64;
    let values = [
        ("k", "v0"),
        ("k", "v3"),
        ("rare", "yes"),
        ("num", "4"),
        ("k", "absent"),
    ];
    let windows = [
        None,
        Some((span / 4, span / 2)),
        Some((span - 40, span + 100)),
    ];
    for (field, value) in values {
        for window in windows {
            for kind in [None, Some("quality.check")] {
                let mut want: Vec<(i64, i64, Uuid)> = stored
                    .iter()
                    .filter(|(_, e)| {
                        let v = &e.data[field];
                        let text = v
                            .as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string());
                        let t = evident_model::unix_micros(e.time);
                        text == value
                            && window.is_none_or(|(a, b)| at(a) <= t && t < at(b))
                            && kind.is_none_or(|k| e.event_type == k)
                    })
                    .map(|(seq, e)| (evident_model::unix_micros(e.time), *seq, e.id))
                    .collect();
                want.sort_unstable_by_key(|w| std::cmp::Reverse((w.0, w.1)));
                let want: Vec<Uuid> = want.into_iter().map(|w| w.2).collect();
                let query = EventQuery {
                    event_type: kind.map(|k| TypeFilter::Exact(k.into())),
                    data: vec![DataFilter {
                        path: vec![field.into()],
                        value: value.into(),
                    }],
                    from: window.map(|w| at(w.0)),
                    to: window.map(|w| at(w.1)),
                    limit: 23,
                    ..EventQuery::default()
                };
                let got = all_pages(store, query).await;
                assert_eq!(
                    got, want,
                    "data.{field}={value} window {window:?} type {kind:?}"
                );
            }
        }
    }
}

/// Retention under the default policy as of 2024-04-10: 30-day `debug.*` events from
/// January and early March go, the late-March one and a January login (7 years) stay,
/// and sequence numbers keep growing even though the newest event expired.
pub async fn retention_removes_expired_events(
    store: &dyn EventStore,
) -> crate::retention::RetentionReport {
    use time::macros::datetime;
    let at = |t: OffsetDateTime, ty: &str| {
        let mut e = event(ty, 0, Severity::Info).event;
        e.time = t;
        EncodedEvent::new(e)
    };
    let old_login = at(datetime!(2024-01-10 00:00 UTC), "auth.login");
    let boundary_new = at(datetime!(2024-03-20 00:00 UTC), "debug.trace");
    let old_debug = at(datetime!(2024-01-10 00:00 UTC), "debug.trace");
    let boundary_old = at(datetime!(2024-03-02 00:00 UTC), "debug.trace");
    let batch = vec![
        old_login.clone(),
        boundary_new.clone(),
        old_debug.clone(),
        boundary_old.clone(),
    ];
    let stored = store.append(batch.into()).await.unwrap();
    assert_eq!(stored.last(), Some(&Appended::Stored(4)));
    let report = store
        .maintain(datetime!(2024-04-10 00:00 UTC))
        .await
        .unwrap();
    assert_eq!(report.removed, 2, "{report:?}");
    for (e, kept) in [
        (&old_login, true),
        (&boundary_new, true),
        (&old_debug, false),
        (&boundary_old, false),
    ] {
        let found = store.get(e.event.id, None).await.unwrap().is_some();
        assert_eq!(found, kept, "{} at {}", e.event.event_type, e.event.time);
    }
    // The expired ids are forgotten: the same event may be stored again, under a new
    // number after every number handed out before (seq 4, the expired newest, included).
    let again = store.append(vec![old_debug].into()).await.unwrap();
    assert_eq!(again, vec![Appended::Stored(5)]);
    report
}

/// A PostgreSQL database of its own for one test, dropped when the value is.
///
/// Created on the server `EVIDENT_TEST_POSTGRES` names (a URL of a database to connect
/// to for `CREATE DATABASE`), by default the local server's `test` database.
pub struct ScratchPostgres {
    admin_url: String,
    name: String,
    /// URL of the scratch database.
    pub url: String,
}

/// The server tests create their databases on.
#[allow(clippy::disallowed_methods)] // test support: the test environment picks the server
pub fn postgres_admin_url() -> String {
    std::env::var("EVIDENT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

impl ScratchPostgres {
    /// Creates an empty database with a unique name.
    pub async fn create() -> Self {
        let admin_url = postgres_admin_url();
        let name = format!("evident_test_{}", Uuid::new_v4().simple());
        let client = admin_client(&admin_url).await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create a test database on {admin_url}: {e}"));
        let mut config: tokio_postgres::Config = admin_url.parse().expect("admin URL");
        config.dbname(&name);
        let url = url_of(&config);
        Self {
            admin_url,
            name,
            url,
        }
    }

    /// A new database holding a copy of this one (nothing may be connected to it).
    pub async fn copy(&self) -> Self {
        let name = format!("evident_test_{}", Uuid::new_v4().simple());
        let client = admin_client(&self.admin_url).await;
        client
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {}", self.name))
            .await
            .unwrap_or_else(|e| panic!("cannot copy test database {}: {e}", self.name));
        let mut config: tokio_postgres::Config = self.admin_url.parse().expect("admin URL");
        config.dbname(&name);
        Self {
            admin_url: self.admin_url.clone(),
            name,
            url: url_of(&config),
        }
    }
}

fn url_of(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    let db = config.get_dbname().unwrap_or("postgres");
    format!("postgres://{user}@{host}:{port}/{db}")
}

async fn admin_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {url} (is it running?): {e}"));
    tokio::spawn(connection);
    client
}

impl Drop for ScratchPostgres {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // Dropping runs outside any runtime the test may be shutting down.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let client = admin_client(&url).await;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// A hit of `rule` for `group` with `events`, at `BASE + minutes`.
pub fn hit(rule: &str, group: &str, minutes: i64, events: &[Uuid]) -> crate::Hit {
    crate::Hit {
        rule_id: rule.into(),
        title: format!("title of {rule}"),
        severity: Severity::High,
        group_key: group.into(),
        tags: vec!["attack.t1110".into()],
        facility: Some("plant-1".into()),
        events: events.to_vec(),
        firings: 1,
        first: BASE + time::Duration::minutes(minutes),
        last: BASE + time::Duration::minutes(minutes),
    }
}

/// Findings fold repeated hits of one rule and group while unresolved, link every
/// event, page newest first, filter, and survive status changes.
pub async fn findings_fold_link_page_and_change_status<S>(store: &S)
where
    S: EventStore + crate::FindingStore,
{
    use crate::findings::{EVIDENCE_LIMIT, FindingQuery, FindingStatus, StatusChange};
    let e: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();
    assert_eq!(store.detection_checkpoint().await.unwrap().done_seq, 0);
    let first = store
        .record_hits(
            vec![
                hit("r1", "user=a", 10, &e[0..5]),
                hit("r1", "user=b", 11, &e[5..6]),
            ],
            7,
        )
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    assert_ne!(first[0], first[1], "two groups, two findings");
    // Same rule and group while open: the same finding, updated.
    let again = store
        .record_hits(vec![hit("r1", "user=a", 8, &e[3..8])], 9)
        .await
        .unwrap();
    assert_eq!(again, vec![first[0]]);
    let a = store.finding(first[0], None).await.unwrap().unwrap();
    assert_eq!(a.count, 2);
    assert_eq!(
        a.evidence,
        e[0..8].to_vec(),
        "evidence without repeats, in order"
    );
    assert_eq!(a.first_seen, BASE + time::Duration::minutes(8));
    assert_eq!(a.last_seen, BASE + time::Duration::minutes(10));
    assert_eq!(a.status, FindingStatus::Open);
    assert_eq!(a.title, "title of r1");
    assert_eq!(a.tags, vec!["attack.t1110".to_string()]);
    assert_eq!(store.detection_checkpoint().await.unwrap().done_seq, 9);

    // Every event is linked, evidence inline stays bounded.
    store
        .record_hits(vec![hit("r1", "user=a", 12, &e[8..200])], 10)
        .await
        .unwrap();
    let a = store.finding(first[0], None).await.unwrap().unwrap();
    assert_eq!(a.evidence.len(), EVIDENCE_LIMIT);
    let linked = store.findings_for_event(e[199], None).await.unwrap();
    assert_eq!(
        linked.iter().map(|f| f.id).collect::<Vec<_>>(),
        vec![first[0]]
    );
    assert!(
        store
            .findings_for_event(Uuid::new_v4(), None)
            .await
            .unwrap()
            .is_empty()
    );
    let out_of_scope = Some(vec!["plant-9".to_string()]);
    assert!(
        store
            .findings_for_event(e[0], out_of_scope.clone())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .finding(first[0], out_of_scope.clone())
            .await
            .unwrap()
            .is_none()
    );

    // Acknowledged still folds; resolved opens a new finding next time.
    let ack = StatusChange {
        status: FindingStatus::Acknowledged,
        by: "analyst".into(),
        at: 1_000,
    };
    let changed = store
        .set_finding_status(first[0], ack, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.status, FindingStatus::Acknowledged);
    assert_eq!(changed.status_by.as_deref(), Some("analyst"));
    assert_eq!(
        store
            .record_hits(vec![hit("r1", "user=a", 13, &[])], 11)
            .await
            .unwrap(),
        vec![first[0]]
    );
    let resolve = StatusChange {
        status: FindingStatus::Resolved,
        by: "analyst".into(),
        at: 2_000,
    };
    store
        .set_finding_status(first[0], resolve, None)
        .await
        .unwrap()
        .unwrap();
    let reopened = store
        .record_hits(vec![hit("r1", "user=a", 14, &e[0..1])], 12)
        .await
        .unwrap();
    assert_ne!(
        reopened,
        vec![first[0]],
        "a resolved finding is not reopened"
    );
    // The event is now evidence of both findings.
    assert_eq!(store.findings_for_event(e[0], None).await.unwrap().len(), 2);
    // Reopening the old one while a newer one holds the group is refused.
    let reopen = StatusChange {
        status: FindingStatus::Open,
        by: "analyst".into(),
        at: 3_000,
    };
    assert!(
        store
            .set_finding_status(first[0], reopen, None)
            .await
            .is_err()
    );
    let missing = StatusChange {
        status: FindingStatus::Resolved,
        by: "x".into(),
        at: 0,
    };
    assert!(
        store
            .set_finding_status(Uuid::new_v4(), missing, None)
            .await
            .unwrap()
            .is_none()
    );

    // Paging newest first, and filters.
    for i in 0..5 {
        store
            .record_hits(vec![hit("r2", &format!("ip={i}"), 20 + i, &[])], 13 + i)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .findings(FindingQuery {
                limit: 2,
                cursor,
                ..FindingQuery::default()
            })
            .await
            .unwrap();
        seen.extend(page.findings.iter().map(|f| f.group_key.clone()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8, "{seen:?}");
    assert_eq!(&seen[..2], ["ip=4", "ip=3"], "newest first");
    let r2 = store
        .findings(FindingQuery {
            rule_id: Some("r2".into()),
            limit: 100,
            ..FindingQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(r2.findings.len(), 5);
    let open = store
        .findings(FindingQuery {
            status: Some(FindingStatus::Resolved),
            limit: 100,
            ..FindingQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        open.findings.iter().map(|f| f.id).collect::<Vec<_>>(),
        vec![first[0]]
    );
    let window = store
        .findings(FindingQuery {
            from: Some(evident_model::unix_micros(
                BASE + time::Duration::minutes(21),
            )),
            to: Some(evident_model::unix_micros(
                BASE + time::Duration::minutes(23),
            )),
            limit: 100,
            ..FindingQuery::default()
        })
        .await
        .unwrap();
    let groups: Vec<_> = window
        .findings
        .iter()
        .map(|f| f.group_key.as_str())
        .collect();
    assert_eq!(groups, ["ip=2", "ip=1"]);
    let scoped = store
        .findings(FindingQuery {
            limit: 100,
            scope: out_of_scope,
            ..FindingQuery::default()
        })
        .await
        .unwrap();
    assert!(scoped.findings.is_empty());
}

/// The detection stage reads committed events back in order and keeps its state.
pub async fn detection_reads_committed_events_and_keeps_state<S>(store: &S)
where
    S: EventStore + crate::FindingStore + evident_stream::CommittedLog,
{
    assert_eq!(store.last_seq().await.unwrap(), 0, "a new store");
    let events: Vec<_> = (0..10)
        .map(|i| event("user.login", i, Severity::Info))
        .collect();
    store.append(events.clone().into()).await.unwrap();
    let first = store.committed_after(0, 4).await.unwrap();
    assert_eq!(
        first.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(first[0].encoded().bytes, events[0].bytes);
    assert_eq!(first[0].encoded().event.id, events[0].event.id);
    let rest = store.committed_after(4, 100).await.unwrap();
    assert_eq!(rest.len(), 6);
    assert_eq!(rest.last().unwrap().encoded().bytes, events[9].bytes);
    assert!(store.committed_after(10, 100).await.unwrap().is_empty());
    assert_eq!(store.last_seq().await.unwrap(), 10);
    assert_eq!(store.detection_checkpoint().await.unwrap().state, None);
    store
        .save_detection_state(4, b"state at 4".to_vec())
        .await
        .unwrap();
    store
        .save_detection_state(6, b"state at 6".to_vec())
        .await
        .unwrap();
    let cp = store.detection_checkpoint().await.unwrap();
    assert_eq!(cp.state, Some((6, b"state at 6".to_vec())));
}

/// Keys are found by their secret, with their role and facilities; a wrong secret finds
/// nothing; admin keys may read personal data. Returns a secret created, for the
/// backend's own check that it is not stored in the clear.
pub async fn keys_are_found_by_secret(store: &dyn crate::KeyStore) -> String {
    use crate::Role;
    let secret = store
        .create_key(
            Role::Read,
            Some(vec!["plant-1".into()]),
            Some("line 3".into()),
        )
        .await
        .unwrap();
    let key = store.find_key(&secret).await.unwrap().expect("key found");
    assert_eq!(
        (key.role, key.facilities.clone()),
        (Role::Read, Some(vec!["plant-1".to_owned()]))
    );
    assert!(
        !key.personal,
        "only admin keys read personal data by default"
    );
    assert!(store.find_key("evk_wrong").await.unwrap().is_none());
    assert!(store.find_key("").await.unwrap().is_none());
    let admin = store.create_key(Role::Admin, None, None).await.unwrap();
    let admin = store
        .find_key(&admin)
        .await
        .unwrap()
        .expect("admin key found");
    assert!(admin.personal);
    assert_eq!(admin.facilities, None);
    let reader = store
        .create_key_with(Role::Read, None, None, true)
        .await
        .unwrap();
    assert!(store.find_key(&reader).await.unwrap().unwrap().personal);
    assert_eq!(store.count_keys().await.unwrap(), 3);
    secret
}

/// After retention removes events, the integrity log still verifies against its signed
/// checkpoints (what was removed counted as pruned, not missing), and every event still
/// held proves against the newest checkpoint.
pub async fn the_log_verifies_and_proves_after_retention<S>(store: &S)
where
    S: EventStore + crate::SignedLog + Clone,
{
    use crate::Proved;
    use std::sync::Arc;
    let signer = Arc::new(evident_integrity::Signer::generate());
    let public = signer.public_key();
    let old = |ty: &str| {
        let mut e = event(ty, 0, Severity::Info).event;
        e.time = datetime!(2024-01-10 00:00 UTC);
        EncodedEvent::new(e)
    };
    let mut kept = Vec::new();
    for round in 0..4 {
        let batch: Vec<_> = (0..10)
            .map(|i| {
                if round < 2 || i % 2 == 1 {
                    old("debug.trace")
                } else {
                    old("auth.login")
                }
            })
            .collect();
        kept.extend(
            batch
                .iter()
                .filter(|e| e.event.event_type == "auth.login")
                .map(|e| e.event.id),
        );
        store.append(batch.into()).await.unwrap();
        store
            .sign_checkpoint(signer.clone(), "test".into())
            .await
            .unwrap()
            .expect("a checkpoint per round");
    }
    let report = store
        .maintain(datetime!(2024-04-10 00:00 UTC))
        .await
        .unwrap();
    assert_eq!(report.removed, 30, "{report:?}");
    let walker = store.clone();
    let walked = tokio::task::spawn_blocking(move || walker.verify_log(&public, None, &|_, _| {}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(walked.report.problem, None, "{:?}", walked.report);
    assert_eq!(
        (walked.report.verified, walked.report.pruned),
        (40, 30),
        "{:?}",
        walked.report
    );
    for id in kept {
        let prover = store.clone();
        match tokio::task::spawn_blocking(move || prover.prove(id))
            .await
            .unwrap()
            .unwrap()
        {
            Some(Proved::Proof(proof)) => proof.verify(&public).unwrap(),
            other => panic!("no proof for a held event: {other:?}"),
        }
    }
}

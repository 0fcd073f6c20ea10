//! The live stream: `GET /api/v1/stream` (WebSocket), `GET /api/v1/stream/sse`
//! (server-sent events) and `POST /api/v1/stream/token` (a short-lived token for
//! browsers).
//!
//! Both transports carry the same messages (see [`session`]): `security_event` for each
//! committed event that passes the subscriber's scope and filter, `finding` for findings
//! opened or changed, `heartbeat`, and `lagged` when the subscriber read too slowly. A
//! WebSocket client also gets `connection_established` first and may send `subscribe`
//! (new filters), `unsubscribe` and `ping`. Each event message carries the event's commit
//! sequence number; a client that reconnects with `since_seq` (WebSocket or SSE query) or
//! `Last-Event-ID` (SSE) gets every matching event after it, from the store, before the
//! live ones.

pub mod session;
pub mod tokens;

use crate::auth::{Caller, Permission};
use crate::error::ApiError;
use crate::privacy::View;
use crate::state::AppState;
use axum::Json;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use evident_store::{Finding, FindingStore};
use evident_stream::live::SUBSCRIBERS;
use evident_stream::{CommittedLog, Filter, FindingNote, Live};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use session::{Out, StreamSettings, Subscriber};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokens::{StreamTokens, TOKEN_TTL};

/// What the stream routes share.
#[derive(Clone)]
pub struct StreamState {
    /// The fan-out of committed events and findings.
    pub live: Arc<Live>,
    /// The store read by sequence number, for resuming.
    pub log: Arc<dyn CommittedLog>,
    /// Heartbeat, buffer and timeout of every session.
    pub settings: StreamSettings,
    /// Tokens handed out to browsers.
    pub tokens: Arc<StreamTokens>,
    /// One permit per connected subscriber.
    slots: Arc<tokio::sync::Semaphore>,
}

impl StreamState {
    /// The stream over `live` and `log` with `settings`.
    pub fn new(live: Arc<Live>, log: Arc<dyn CommittedLog>, settings: StreamSettings) -> Self {
        Self {
            live,
            log,
            settings,
            tokens: Arc::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(settings.max_subscribers.max(1))),
        }
    }

    /// A place for one more subscriber, held while it is connected; refused at the limit.
    fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            ApiError::Unavailable(format!(
                "the live stream has its {} subscribers (stream.max_subscribers); try again later",
                self.settings.max_subscribers
            ))
        })
    }
}

/// A finding as the stream tells of it, at sequence number `seq`: as stored (group keys
/// of sealed fields keep their pseudonyms, as the findings API shows them to keys without
/// the personal-data permission).
pub fn finding_note(finding: &Finding, seq: i64) -> FindingNote {
    FindingNote {
        seq,
        severity: finding.severity,
        facility: finding.facility.clone(),
        finding: serde_json::to_value(finding).unwrap_or(Value::Null),
        revealed: None,
    }
}

/// [`finding_note`], with the finding also as readers allowed to see personal data see it
/// (clear values in its group key, read from its evidence), when protection is on.
pub async fn finding_note_revealed(
    finding: &Finding,
    seq: i64,
    privacy: Option<&Arc<evident_privacy::Privacy>>,
    events: &Arc<dyn evident_store::EventReader>,
) -> FindingNote {
    let mut note = finding_note(finding, seq);
    if privacy.is_some() {
        let view = View::personal(privacy);
        match crate::reveal::present(vec![finding.clone()], &view, events, &None).await {
            Ok(mut shown) => note.revealed = shown.pop().filter(|v| *v != note.finding),
            Err(error) => {
                tracing::warn!(%error, "a finding's personal values could not be shown on the stream");
            }
        }
    }
    note
}

/// Tells the stream of the findings detection opened or changed, reading each from
/// `store`; runs until detection stops.
pub async fn publish_findings(
    mut changed: tokio::sync::broadcast::Receiver<evident_detect::FindingsChanged>,
    store: Arc<dyn FindingStore>,
    events: Arc<dyn evident_store::EventReader>,
    privacy: Option<Arc<evident_privacy::Privacy>>,
    live: Arc<Live>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let change = match changed.recv().await {
            Ok(change) => change,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "the stream missed finding changes");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        // Nobody subscribed: reading and revealing each finding would be for nothing
        // (a subscriber who joins later reads findings through the API).
        if !live.watched() {
            continue;
        }
        for id in change.ids {
            match store.finding(id, None).await {
                Ok(Some(finding)) => live.publish_finding(
                    finding_note_revealed(&finding, change.seq, privacy.as_ref(), &events).await,
                ),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, %id, "a changed finding could not be read for the stream")
                }
            }
        }
    }
}

fn stream_state(state: &AppState) -> Result<&StreamState, ApiError> {
    state
        .stream
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("the live stream is not running".into()))
}

/// `POST /api/v1/stream/token`: a token that opens streams for this key, for 60 s, as
/// `?token=` (a browser cannot set headers on a WebSocket or an `EventSource`).
pub async fn token(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Permission::Read)?;
    let token = stream_state(&state)?.tokens.issue(caller.key);
    Ok(Json(json!({
        "token": token,
        "expires_in": TOKEN_TTL.as_secs(),
    })))
}

/// Who opens a stream, and what they ask for.
struct Opening {
    caller: Caller,
    who: Subscriber,
    filter: Filter,
}

/// Authenticates (bearer key, or `token`), reads `since_seq` (or `Last-Event-ID`) and
/// the filters from the query; a mistake is an error before anything is opened.
async fn open(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Opening, ApiError> {
    let mut token = None;
    let mut since = None;
    let mut filters = Vec::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*name {
            "token" => token = Some(value.into_owned()),
            "since_seq" => since = Some(parse_seq("since_seq", &value)?),
            _ => filters.push((name.into_owned(), value.into_owned())),
        }
    }
    if since.is_none()
        && let Some(last) = headers.get("last-event-id")
    {
        let text = last.to_str().unwrap_or_default();
        since = Some(parse_seq("Last-Event-ID", text)?);
    }
    let caller = match (headers.contains_key(AUTHORIZATION), token) {
        (true, _) | (false, None) => Caller::from_headers(headers, state).await?,
        (false, Some(token)) => Caller {
            key: stream_state(state)?
                .tokens
                .key(&token)
                .ok_or(ApiError::InvalidKey)?,
        },
    };
    caller.require(Permission::Read)?;
    let scope = caller.scope();
    let mut filter = Filter::from_pairs(filters.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .map_err(|e| ApiError::InvalidParameter(e.to_string()))?;
    let view = View::new(state.privacy.as_ref(), &caller);
    personal_filters(state, &caller, &mut filter)?;
    let personal = view.opener().is_some();
    Ok(Opening {
        caller,
        who: Subscriber {
            scope,
            view: usize::from(personal),
            show: Arc::new(move |event: &mut Value| view.show(event)),
            since,
        },
        filter,
    })
}

fn parse_seq(name: &str, text: &str) -> Result<i64, ApiError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            ApiError::InvalidParameter(format!(
                "{name} `{text}` is not a sequence number (an integer, 0 or more)"
            ))
        })
}

/// Turns filters on sealed fields into filters on their pseudonyms, as the query API
/// does: a caller without the personal-data permission may filter them only by
/// pseudonym (a clear value would let them test who is in the data).
fn personal_filters(
    state: &AppState,
    caller: &Caller,
    filter: &mut Filter,
) -> Result<(), ApiError> {
    let Some(privacy) = state.privacy.as_ref() else {
        return Ok(());
    };
    let view = View::new(Some(privacy), caller);
    for field in privacy.fields() {
        let path = field.path();
        filter
            .seal_values(&path, &mut |value| view.filter_value(privacy, &path, value))
            .map_err(|e| ApiError::InvalidParameter(e.to_string()))?;
    }
    Ok(())
}

/// `GET /api/v1/stream`: the live stream over a WebSocket.
pub async fn websocket(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let opening = open(&state, &headers, query.as_deref()).await?;
    let stream = stream_state(&state)?.clone();
    let slot = stream.slot()?;
    Ok(upgrade
        .on_upgrade(move |socket| async move {
            websocket_session(socket, state, stream, opening).await;
            drop(slot);
        })
        .into_response())
}

/// A message's text as WebSocket bytes, shared rather than copied.
fn frame(text: &Arc<str>) -> Message {
    struct Shared(Arc<str>);
    impl AsRef<[u8]> for Shared {
        fn as_ref(&self) -> &[u8] {
            self.0.as_bytes()
        }
    }
    let bytes = bytes::Bytes::from_owner(Shared(text.clone()));
    // The text came from a str: it is UTF-8.
    Message::Text(Utf8Bytes::try_from(bytes).unwrap_or_else(|_| Utf8Bytes::from(&**text)))
}

/// Messages written to a WebSocket in one go when several are waiting.
const WRITE_BATCH: usize = 64;

async fn websocket_session(
    socket: WebSocket,
    state: AppState,
    stream: StreamState,
    opening: Opening,
) {
    let Opening {
        caller,
        who,
        filter,
    } = opening;
    let client_id = uuid::Uuid::now_v7();
    let settings = stream.settings;
    let (mut sink, mut incoming) = socket.split();
    let hello = json!({
        "type": "connection_established",
        "client_id": client_id,
        "seq": who.since.unwrap_or_else(|| stream.live.position()),
        "filters": filter.to_json(),
        "timestamp": session::now(),
    });
    if sink
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    metrics::gauge!(SUBSCRIBERS).increment(1.0);
    tracing::debug!(%client_id, "stream client connected (WebSocket)");
    let mut session = session::start(
        stream.live.clone(),
        stream.log.clone(),
        who,
        Some(filter),
        settings,
    );
    let mut ended_by_us = false;
    loop {
        tokio::select! {
            out = session.out.recv() => {
                let Some(first) = out else {
                    ended_by_us = true;
                    break;
                };
                let mut batch = vec![first];
                while batch.len() < WRITE_BATCH {
                    match session.out.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                let write = async {
                    for out in &batch {
                        sink.feed(frame(&out.text)).await?;
                    }
                    sink.flush().await
                };
                match tokio::time::timeout(settings.send_timeout, write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break,
                    Err(_) => {
                        metrics::counter!(evident_stream::live::CLOSED_SLOW).increment(1);
                        tracing::info!(%client_id, "stream client closed: a send stalled");
                        break;
                    }
                }
            }
            message = incoming.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let reply = client_message(&state, &caller, &session, &text);
                    let sent = tokio::time::timeout(
                        settings.send_timeout,
                        sink.send(Message::Text(reply.to_string().into())),
                    )
                    .await;
                    if !matches!(sent, Ok(Ok(()))) {
                        break;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let reply = error_message("invalid_message", "messages are JSON text, not binary");
                    if sink.send(Message::Text(reply.to_string().into())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
        }
    }
    if ended_by_us {
        let (notice, reason) = session.state.closed_notice();
        let goodbye = async {
            sink.send(Message::Text(notice.to_string().into())).await?;
            sink.send(Message::Close(Some(CloseFrame {
                code: 1008,
                reason: Utf8Bytes::from(truncate(&reason, 120)),
            })))
            .await
        };
        tokio::time::timeout(settings.send_timeout, goodbye)
            .await
            .ok();
    }
    metrics::gauge!(SUBSCRIBERS).decrement(1.0);
    tracing::debug!(%client_id, "stream client disconnected (WebSocket)");
}

fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn error_message(code: &str, message: &str) -> Value {
    json!({"type": "error", "code": code, "message": message})
}

/// Answers one message from a WebSocket client.
fn client_message(
    state: &AppState,
    caller: &Caller,
    session: &session::Session,
    text: &str,
) -> Value {
    let message: Value = match serde_json::from_str(text) {
        Ok(Value::Object(message)) => Value::Object(message),
        Ok(_) | Err(_) => {
            return error_message(
                "invalid_message",
                "expected a JSON object such as {\"type\":\"subscribe\",\"filters\":{...}}",
            );
        }
    };
    match message.get("type").and_then(Value::as_str) {
        Some("subscribe") => {
            let empty = serde_json::Map::new();
            let filters = match message.get("filters") {
                None | Some(Value::Null) => &empty,
                Some(Value::Object(filters)) => filters,
                Some(_) => return error_message("invalid_filter", "`filters` must be an object"),
            };
            let mut filter = match Filter::from_json(filters) {
                Ok(filter) => filter,
                Err(e) => return error_message("invalid_filter", &e.to_string()),
            };
            if let Err(e) = personal_filters(state, caller, &mut filter) {
                return error_message("invalid_filter", &e.to_string());
            }
            let echoed = filter.to_json();
            session.subscribe(Some(filter));
            json!({"type": "subscription_updated", "subscribed": true, "filters": echoed, "timestamp": session::now()})
        }
        Some("unsubscribe") => {
            session.subscribe(None);
            json!({"type": "subscription_updated", "subscribed": false, "filters": Value::Null, "timestamp": session::now()})
        }
        Some("ping") => {
            json!({"type": "pong", "seq": session.state.examined.load(Ordering::Relaxed), "timestamp": session::now()})
        }
        Some(other) => error_message(
            "invalid_message",
            &format!("unknown message type `{other}`; send subscribe, unsubscribe or ping"),
        ),
        None => error_message("invalid_message", "the message has no `type`"),
    }
}

/// `GET /api/v1/stream/sse`: the live stream as server-sent events. Each message is an
/// event named by its type; event messages carry their sequence number as the SSE id,
/// so a reconnecting `EventSource` resumes by itself.
pub async fn sse(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Opening { who, filter, .. } = open(&state, &headers, query.as_deref()).await?;
    let stream = stream_state(&state)?.clone();
    let slot = stream.slot()?;
    let session = session::start(stream.live, stream.log, who, Some(filter), stream.settings);
    metrics::gauge!(SUBSCRIBERS).increment(1.0);
    let guard = (Gauge, slot);
    let state = session.state.clone();
    let events = futures_util::stream::unfold(
        (session.out, Some((state, guard))),
        |(mut out, held)| async move {
            let held = held?;
            match out.recv().await {
                Some(message) => {
                    Some((Ok::<_, Infallible>(sse_event(&message)), (out, Some(held))))
                }
                None => {
                    let (state, _) = &held;
                    let (notice, _) = state.closed_notice();
                    let last = SseEvent::default().event("closed").data(notice.to_string());
                    Some((Ok(last), (out, None)))
                }
            }
        },
    );
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn sse_event(message: &Out) -> SseEvent {
    let event = SseEvent::default().event(message.kind).data(&*message.text);
    if message.kind == "security_event" {
        event.id(message.seq.to_string())
    } else {
        event
    }
}

/// Counts an SSE subscriber for as long as its response lives.
struct Gauge;

impl Drop for Gauge {
    fn drop(&mut self) {
        metrics::gauge!(SUBSCRIBERS).decrement(1.0);
    }
}

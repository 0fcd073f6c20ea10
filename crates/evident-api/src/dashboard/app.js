// evident's dashboard: plain JavaScript over the REST API and the live stream (SSE).
// No build step; the service compiles this file in.
"use strict";

const KEY_SLOT = "evident.key";
const MAX_ROWS = 500; // rows the live tail keeps; older ones are dropped

const state = {
  key: sessionStorage.getItem(KEY_SLOT),
  source: null, // the EventSource of the live tail
  lastSeq: null, // the last event seq the tail showed, to resume from
  paused: false,
  pending: [], // messages received, not yet drawn (drawn once per frame)
  drawScheduled: false,
  received: 0,
  missed: 0,
  selectedFinding: null,
  generation: 0, // bumped by every start and stop of the tail
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else if (name.startsWith("data-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) {
    node.append(child === null || child === undefined ? "" : child);
  }
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${state.key}`, "Content-Type": "application/json", ...(options.headers || {}) },
  });
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `${response.status} ${response.statusText}`;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

// ---- sign in ------------------------------------------------------------------------

async function signIn(key) {
  state.key = key;
  await api("/api/v1/findings?limit=1");
  sessionStorage.setItem(KEY_SLOT, key);
}

function signOut() {
  sessionStorage.removeItem(KEY_SLOT);
  state.key = null;
  stopTail();
  location.hash = "#/signin";
  route();
}

$("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("signin-error").textContent = "";
  try {
    await signIn($("key").value.trim());
    $("key").value = "";
    location.hash = "#/tail";
    route();
  } catch (error) {
    state.key = null;
    $("signin-error").textContent =
      error.status === 401 ? "That key is not valid." : error.status === 403 ? "That key may not read events." : error.message;
  }
});
$("signout").addEventListener("click", signOut);

// ---- pages --------------------------------------------------------------------------

const PAGES = ["signin", "tail", "findings", "overview", "event", "rules", "health"];

function route() {
  const parts = (location.hash.replace(/^#\//, "") || "tail").split("/");
  let page = parts[0] === "events" ? "event" : parts[0];
  if (!state.key) page = "signin";
  if (!PAGES.includes(page)) page = "tail";
  for (const name of PAGES) $(`page-${name}`).hidden = name !== page;
  $("nav").hidden = !state.key;
  $("signout").hidden = !state.key;
  for (const link of document.querySelectorAll("nav a[data-page]")) {
    link.classList.toggle("active", link.dataset.page === page);
  }
  if (page !== "tail") stopTail();
  if (page === "tail") startTail();
  if (page === "findings") loadFindings();
  if (page === "overview") loadOverview();
  if (page === "rules") loadRules();
  if (page === "health") loadHealth();
  if (page === "event") loadEvent(decodeURIComponent(parts[1] || ""));
}
window.addEventListener("hashchange", route);

// ---- live tail ----------------------------------------------------------------------

function tailQuery() {
  const form = new FormData($("tail-filters"));
  const query = new URLSearchParams();
  for (const [name, value] of form.entries()) {
    if (value.trim()) query.append(name, value.trim());
  }
  return query;
}

async function startTail() {
  stopTail();
  // A later start or stop wins over this one while it waits for its token.
  const generation = state.generation;
  setStatus("tail-status", "connecting…");
  let token;
  try {
    token = (await api("/api/v1/stream/token", { method: "POST" })).token;
  } catch (error) {
    if (generation === state.generation) setStatus("tail-status", `cannot open the stream: ${error.message}`);
    return;
  }
  if (generation !== state.generation) return;
  const query = tailQuery();
  query.set("token", token);
  if (state.lastSeq !== null) query.set("since_seq", state.lastSeq);
  const source = new EventSource(`/api/v1/stream/sse?${query}`);
  state.source = source;
  source.addEventListener("open", () => setStatus("tail-status", "live"));
  source.addEventListener("security_event", (e) => receive(JSON.parse(e.data)));
  source.addEventListener("finding", (e) => receive(JSON.parse(e.data)));
  source.addEventListener("lagged", (e) => {
    const notice = JSON.parse(e.data);
    state.missed += notice.missed;
    setStatus("tail-status", `live; ${state.missed} messages missed (the page read too slowly)`);
  });
  source.addEventListener("closed", () => reconnectSoon());
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) reconnectSoon();
    else setStatus("tail-status", "reconnecting…");
  });
}

function reconnectSoon() {
  stopTail();
  setStatus("tail-status", "disconnected; reconnecting…");
  setTimeout(() => {
    if (!$("page-tail").hidden && state.key) startTail();
  }, 2000);
}

function stopTail() {
  state.generation += 1;
  if (state.source) state.source.close();
  state.source = null;
}

function receive(message) {
  state.received += 1;
  if (message.type === "security_event") state.lastSeq = message.seq;
  state.pending.push(message);
  if (state.pending.length > MAX_ROWS) state.pending.splice(0, state.pending.length - MAX_ROWS);
  if (!state.paused && !state.drawScheduled) {
    state.drawScheduled = true;
    requestAnimationFrame(draw);
  }
}

function draw() {
  state.drawScheduled = false;
  const rows = $("tail-rows");
  const fragment = document.createDocumentFragment();
  for (let i = state.pending.length - 1; i >= 0; i--) fragment.append(tailRow(state.pending[i]));
  state.pending = [];
  rows.prepend(fragment);
  while (rows.children.length > MAX_ROWS) rows.lastElementChild.remove();
  if (!state.paused && state.source) setStatus("tail-status", `live; ${state.received} received`);
}

function tailRow(message) {
  if (message.type === "finding") {
    const f = message.finding;
    return el(
      "tr",
      { class: `sev-${f.severity} finding-row` },
      el("td", {}, message.seq),
      el("td", {}, f.last_seen),
      el("td", {}, f.severity),
      el("td", {}, `finding: ${f.title}`),
      el("td", {}, ""),
      el("td", {}, ""),
      el("td", {}, f.facility || ""),
      el("td", {}, `${f.group_key}; ${f.count} firings; ${f.status}`),
    );
  }
  const e = message.event;
  const actor = e.actor || {};
  return el(
    "tr",
    { class: `sev-${e.severity}`, "data-id": e.id, onclick: () => (location.hash = `#/events/${e.id}`) },
    el("td", {}, message.seq),
    el("td", {}, e.time),
    el("td", {}, e.severity),
    el("td", {}, e.type),
    el("td", {}, actor.user_id || ""),
    el("td", {}, e.source || actor.ip || ""),
    el("td", {}, e.facility || ""),
    el("td", { title: JSON.stringify(e.data || {}) }, JSON.stringify(e.data || {})),
  );
}

$("tail-filters").addEventListener("submit", (event) => {
  event.preventDefault();
  $("tail-rows").replaceChildren();
  state.pending = [];
  state.lastSeq = null;
  startTail();
});

$("pause").addEventListener("click", () => {
  state.paused = !state.paused;
  $("pause").textContent = state.paused ? "Resume" : "Pause";
  if (state.paused) setStatus("tail-status", "paused; new events are kept (the newest 500)");
  else {
    state.drawScheduled = true;
    requestAnimationFrame(draw);
  }
});

function setStatus(id, text) {
  $(id).textContent = text;
}

// ---- findings -----------------------------------------------------------------------

async function loadFindings() {
  const status = new FormData($("findings-filters")).get("status");
  const query = new URLSearchParams({ limit: "200" });
  if (status) query.set("status", status);
  setStatus("findings-status", "loading…");
  try {
    const page = await api(`/api/v1/findings?${query}`);
    const rows = page.findings.map((f) =>
      el(
        "tr",
        { class: `sev-${f.severity}`, "data-id": f.id, onclick: () => showFinding(f) },
        el("td", {}, f.last_seen),
        el("td", {}, f.severity),
        el("td", {}, f.title),
        el("td", {}, f.group_key),
        el("td", {}, f.count),
        el("td", { class: "finding-status" }, f.status),
      ),
    );
    $("findings-rows").replaceChildren(...rows);
    setStatus("findings-status", `${rows.length} findings`);
    if (state.selectedFinding) {
      const again = page.findings.find((f) => f.id === state.selectedFinding);
      if (again) showFinding(again);
    }
  } catch (error) {
    setStatus("findings-status", error.message);
  }
}

function showFinding(f) {
  state.selectedFinding = f.id;
  for (const row of $("findings-rows").children) row.classList.toggle("selected", row.dataset.id === f.id);
  $("finding-detail").hidden = false;
  $("finding-title").textContent = f.title;
  $("finding-error").textContent = "";
  const facts = [
    ["rule", f.rule_id],
    ["severity", f.severity],
    ["group", f.group_key],
    ["facility", f.facility || "—"],
    ["firings", f.count],
    ["first seen", f.first_seen],
    ["last seen", f.last_seen],
    ["status", f.status],
    ["changed by", f.status_by || "—"],
    ["changed at", f.status_at || "—"],
    ["evidence", (f.evidence || []).slice(0, 20).join(", ")],
  ];
  $("finding-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { class: `fact-${k.replace(/ /g, "-")}` }, v)]));
}

for (const button of document.querySelectorAll("#finding-action button")) {
  button.addEventListener("click", async () => {
    const by = new FormData($("finding-action")).get("by");
    try {
      const changed = await api(`/api/v1/findings/${state.selectedFinding}`, {
        method: "PATCH",
        body: JSON.stringify({ status: button.dataset.status, by: by || undefined }),
      });
      showFinding(changed);
      loadFindings();
    } catch (error) {
      $("finding-error").textContent = error.message;
    }
  });
}

$("findings-filters").addEventListener("submit", (event) => {
  event.preventDefault();
  loadFindings();
});

// ---- rules --------------------------------------------------------------------------

async function loadRules() {
  setStatus("rules-status", "loading…");
  try {
    const [library, findings] = await Promise.all([api("/api/v1/rules"), api("/api/v1/findings?limit=1000")]);
    const fired = {};
    for (const f of findings.findings) {
      const r = (fired[f.rule_id] ||= { firings: 0, findings: 0, last: "" });
      r.firings += f.count;
      r.findings += 1;
      if (f.last_seen > r.last) r.last = f.last_seen;
    }
    const rows = library.rules.map((rule) => {
      const r = fired[rule.id] || { firings: 0, findings: 0, last: "" };
      return el(
        "tr",
        { class: `sev-${rule.level || "info"}`, "data-rule": rule.id },
        el("td", { title: rule.id }, rule.title),
        el("td", {}, rule.kind),
        el("td", {}, rule.level || ""),
        el("td", {}, "enabled"),
        el("td", {}, r.last || "never"),
        el("td", { class: "rule-firings" }, r.firings),
        el("td", {}, r.findings),
        el("td", {}, rule.file),
      );
    });
    $("rules-rows").replaceChildren(...rows);
    const problems = library.problems.map((p) => el("li", {}, `${p.file || ""}: ${p.reason || JSON.stringify(p)}`));
    if (problems.length === 0) problems.push(el("li", {}, "none"));
    $("rules-problems").replaceChildren(...problems);
    setStatus("rules-status", `${rows.length} rules loaded; firings counted from the latest 1,000 findings`);
  } catch (error) {
    setStatus("rules-status", error.message);
  }
}

// ---- health -------------------------------------------------------------------------

function facts(id, pairs) {
  $(id).replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { class: `fact-${k.replace(/ /g, "-")}` }, v)]));
}

async function loadHealth() {
  setStatus("health-status", "loading…");
  try {
    const ready = await fetch("/readyz").then(async (r) => ({ code: r.status, body: await r.json() }));
    const detection = ready.body.detection || {};
    facts("health-ready", [
      ["ready", ready.code === 200 ? "yes" : `no: ${ready.body.reason}`],
      ["detection behind", `${detection.lag_events ?? 0} events, ${Math.round(detection.lag_seconds ?? 0)} s`],
    ]);
    const p = await api("/api/v1/stats/pipeline");
    const dead = await api("/api/v1/dead-letters?limit=1000")
      .then((d) => d.dead_letters.length)
      .catch((error) => (error.status === 403 ? "an admin key shows them" : error.message));
    facts("health-pipeline", [
      ["received", p.received],
      ["stored", p.processed],
      ["duplicates", p.duplicates],
      ["folded", p.deduplicated],
      ["commits", p.commits],
      ["failed", p.failed],
      ["dead letters", dead],
      ["queued bytes", p.queue_bytes],
    ]);
    facts("health-lanes", p.queue_size.map((lane) => [lane.priority, lane.events]));
    setStatus("health-status", `as of ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    setStatus("health-status", error.message);
  }
}

$("health-refresh").addEventListener("click", loadHealth);
$("verify-run").addEventListener("click", async () => {
  $("health-verify").textContent = "walking the log…";
  $("health-verify").className = "proof wait";
  try {
    const result = await api("/api/v1/integrity/verify");
    const ok = result.ok === true;
    const tail = result.unverified_tail ? `; ${result.unverified_tail} newer events wait for the next checkpoint` : "";
    if (!ok) {
      $("health-verify").textContent = `problem: ${result.problem || JSON.stringify(result.beside)}${result.problem_event ? ` (event ${result.problem_event})` : ""}`;
      $("health-verify").className = "proof bad";
    } else if (result.verified_events === 0) {
      $("health-verify").textContent = `nothing signed yet${tail}`;
      $("health-verify").className = "proof wait";
    } else {
      $("health-verify").textContent = `verified at ${new Date().toLocaleTimeString()}: ${result.verified_events} events against ${result.checkpoints} signed checkpoints${tail}`;
      $("health-verify").className = "proof ok";
    }
  } catch (error) {
    $("health-verify").textContent = error.message;
    $("health-verify").className = "proof bad";
  }
});

// ---- event detail -------------------------------------------------------------------

async function loadEvent(id) {
  $("event-json").textContent = "loading…";
  $("event-proof").textContent = "checking…";
  $("event-proof").className = "proof";
  $("event-proof-facts").replaceChildren();
  $("event-findings").replaceChildren();
  try {
    const event = await api(`/api/v1/events/${encodeURIComponent(id)}`);
    $("event-json").textContent = JSON.stringify(event, null, 2);
  } catch (error) {
    $("event-json").textContent = error.message;
    $("event-proof").textContent = "";
    return;
  }
  checkProof(id);
  try {
    const page = await api("/api/v1/findings?limit=1000");
    const items = page.findings
      .filter((f) => (f.evidence || []).includes(id))
      .map((f) => el("li", {}, `${f.title} (${f.severity}, ${f.status})`));
    if (items.length === 0) items.push(el("li", {}, "none"));
    $("event-findings").replaceChildren(...items);
  } catch (error) {
    $("event-findings").replaceChildren(el("li", {}, error.message));
  }
}

function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function toBase64(bytes) {
  return btoa(String.fromCharCode(...bytes));
}

async function sha256(...parts) {
  const joined = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    joined.set(p, at);
    at += p.length;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", joined));
}

/// RFC 6962 inclusion: the root the path leads to from `leaf` at `index` in a tree of `size`.
async function rootFromPath(leaf, index, size, path) {
  if (index >= size) throw new Error("the index is past the checkpoint's size");
  let f = BigInt(index);
  let s = BigInt(size) - 1n;
  let r = leaf;
  for (const p of path) {
    if (s === 0n) throw new Error("the proof is too long");
    if ((f & 1n) === 1n || f === s) {
      r = await sha256(Uint8Array.of(1), p, r);
      while ((f & 1n) === 0n && f !== 0n) {
        f >>= 1n;
        s >>= 1n;
      }
    } else {
      r = await sha256(Uint8Array.of(1), r, p);
    }
    f >>= 1n;
    s >>= 1n;
  }
  if (s !== 0n) throw new Error("the proof is too short");
  return r;
}

function proofResult(text, kind) {
  $("event-proof").textContent = text;
  $("event-proof").className = `proof ${kind}`;
}

async function checkProof(id) {
  if (!window.crypto || !crypto.subtle) {
    proofResult("this page cannot check proofs here (no Web Crypto: open it over HTTPS or on this machine); use evident verify-proof", "wait");
    return;
  }
  let proof;
  let key;
  try {
    proof = await api(`/api/v1/events/${encodeURIComponent(id)}/proof`);
    key = await api("/api/v1/integrity/key");
  } catch (error) {
    proofResult(error.message, error.status === 409 ? "wait" : "bad");
    return;
  }
  try {
    const c = proof.checkpoint;
    const event = fromBase64(proof.event);
    const stored = JSON.parse(new TextDecoder().decode(event));
    if (stored.id !== id) throw new Error(`the proof is of event ${stored.id}`);
    const leaf = await sha256(Uint8Array.of(0), event);
    const root = await rootFromPath(leaf, proof.index, c.size, proof.path.map(fromBase64));
    if (toBase64(root) !== c.root) throw new Error("the path does not lead to the checkpoint's root");
    if (c.key_id !== key.key_id) throw new Error(`signed by key ${c.key_id}, not by this server's key ${key.key_id}`);
    const text = `evident checkpoint v1\n${c.origin}\n${c.size}\n${c.root}\n${c.time}\n`;
    const publicKey = await crypto.subtle.importKey("raw", fromBase64(key.public_key), { name: "Ed25519" }, false, ["verify"]);
    const signed = await crypto.subtle.verify({ name: "Ed25519" }, publicKey, fromBase64(c.signature), new TextEncoder().encode(text));
    if (!signed) throw new Error("the checkpoint's signature does not verify");
    proofResult(`verified: event ${proof.index + 1} of ${c.size} in the checkpoint signed by key ${c.key_id}`, "ok");
    $("event-proof-facts").replaceChildren(
      el("dt", {}, "log"), el("dd", {}, c.origin),
      el("dt", {}, "root"), el("dd", {}, c.root),
      el("dt", {}, "key"), el("dd", {}, `${key.key_id} (as this server reports it; check offline with evident verify-proof and a key you hold)`),
    );
  } catch (error) {
    proofResult(`does not verify: ${error.message}`, "bad");
  }
}

// ---- overview -----------------------------------------------------------------------

async function loadOverview() {
  const from = new FormData($("overview-filters")).get("from") || "1h";
  const interval = from === "1h" ? "1m" : from === "24h" ? "1h" : "6h";
  setStatus("overview-status", "loading…");
  try {
    const severities = await api(`/api/v1/stats?from=${from}&interval=${interval}&group_by=severity`);
    drawSeries(severities);
    drawBars("chart-severities", severities.groups, "severity");
    const types = await api(`/api/v1/stats?from=${from}&interval=${interval}&group_by=type`);
    const users = await api(`/api/v1/stats?from=${from}&interval=${interval}&group_by=user_id`);
    const ips = await api(`/api/v1/stats?from=${from}&interval=${interval}&group_by=source_ip`);
    drawBars("chart-types", types.groups, "type");
    drawBars("chart-users", users.groups, "user_id");
    drawBars("chart-ips", ips.groups, "source_ip");
    const findings = await api("/api/v1/findings?limit=1000");
    const perRule = {};
    for (const f of findings.findings) perRule[f.rule_id] = (perRule[f.rule_id] || 0) + 1;
    drawBars(
      "chart-rules",
      Object.entries(perRule).map(([rule_id, count]) => ({ rule_id, count })),
      "rule_id",
    );
    setStatus("overview-status", `${severities.total} events`);
  } catch (error) {
    setStatus("overview-status", error.message);
  }
}

function drawBars(id, groups, field) {
  const top = [...groups].sort((a, b) => b.count - a.count).slice(0, 10);
  const max = Math.max(1, ...top.map((g) => g.count));
  const items = top.map((g) =>
    el(
      "div",
      { class: "bar-item", "data-key": g[field] === null ? "" : String(g[field]) },
      el("div", { class: "bar-label" }, el("span", {}, g[field] === null ? "(none)" : g[field]), el("span", { class: "bar-count" }, g.count)),
      bar((100 * g.count) / max),
    ),
  );
  if (items.length === 0) items.push(el("p", { class: "status" }, "nothing in this period"));
  $(id).replaceChildren(...items);
}

function bar(percent) {
  const node = el("div", { class: "bar" });
  node.style.width = `${percent}%`;
  return node;
}

const SEVERITY_COLOURS = [
  ["critical", "#ff4d4f"],
  ["high", "#ff8c1a"],
  ["medium", "#f2c94c"],
  ["low", "#6fcf97"],
  ["info", "#8b98a5"],
];

function drawSeries(stats) {
  // The store answers the buckets that hold events; the chart spans the whole period,
  // one stacked bar per bucket, by severity.
  const step = stats.interval_seconds * 1000;
  const from = Date.parse(stats.from);
  const to = Date.parse(stats.to);
  const held = new Map(stats.series.map((b) => [Math.floor((Date.parse(b.start) - from) / step), b]));
  const buckets = [];
  for (let i = 0, t = from; t < to && i < 2000; i++, t += step) {
    const b = held.get(i);
    buckets.push({ start: new Date(t).toISOString(), count: b ? b.count : 0, by: b ? b.by_severity : {} });
  }
  const max = Math.max(1, ...buckets.map((b) => b.count));
  const width = 900;
  const height = 200;
  const barWidth = buckets.length ? width / buckets.length : width;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 20}`);
  svg.setAttribute("width", "100%");
  svg.setAttribute("role", "img");
  buckets.forEach((bucket, i) => {
    let y = height;
    for (const [severity, colour] of [...SEVERITY_COLOURS].reverse()) {
      const n = bucket.by[severity] || 0;
      if (!n) continue;
      const h = (height * n) / max;
      y -= h;
      const rect = document.createElementNS(ns, "rect");
      rect.setAttribute("x", i * barWidth + 1);
      rect.setAttribute("y", y);
      rect.setAttribute("width", Math.max(1, barWidth - 2));
      rect.setAttribute("height", h);
      rect.setAttribute("fill", colour);
      rect.setAttribute("data-severity", severity);
      rect.setAttribute("data-count", n);
      const title = document.createElementNS(ns, "title");
      title.textContent = `${bucket.start}: ${n} ${severity}`;
      rect.append(title);
      svg.append(rect);
    }
  });
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", 0);
  label.setAttribute("y", height + 15);
  const first = buckets[0] ? buckets[0].start : "";
  const last = buckets.length ? buckets[buckets.length - 1].start : "";
  label.textContent = `${first} … ${last} (at most ${max} per ${stats.interval_seconds} s)`;
  svg.append(label);
  $("chart-series").replaceChildren(svg);
}

$("overview-filters").addEventListener("submit", (event) => {
  event.preventDefault();
  loadOverview();
});

route();

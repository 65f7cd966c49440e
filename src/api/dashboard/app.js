// Seadragon's admin dashboard. Every call goes to this server's admin API with the admin key
// the user signed in with; the key lives in this tab's sessionStorage only. No framework and no
// build step: the binary serves this file as it is.
"use strict";

const STORE = "seadragon.adminKey";
const POLL_MS = 1500; // pause between the end of one refresh and the next
const WINDOW_MS = 15 * 60 * 1000; // the charts' longest span
const MIN_SPAN_MS = 60 * 1000; // their shortest: a fresh page's few points are not a dot at the edge
const DASH = "–";
const $ = (selector) => document.querySelector(selector);

let key = null;
let tiers = []; // from /admin/tiers: names and order of every table, colours of the charts
let timer = null;
let session = 0; // bumped on sign-out, so a refresh still in flight stops its loop
let history = []; // {t, depth: {tier: n}, p50: {tier: ms}, p95: {tier: ms}}, oldest first
const samples = new Map(); // job id -> recent {t, tokens}, for tokens per second

// Elements and formatting.
// An element with attributes (`on*` become listeners) and children; text is never parsed as HTML.
function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (name.startsWith("on")) e.addEventListener(name.slice(2), value);
    else if (name === "class") e.className = value;
    else if (value != null && value !== false) e.setAttribute(name, value === true ? "" : value);
  }
  for (const c of children.flat()) if (c != null) e.append(c instanceof Node ? c : String(c));
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) e.setAttribute(name, value);
  if (text != null) e.textContent = text;
  return e;
}

const count = (n, unit) => (n == null ? DASH : `${Number(n).toLocaleString("en")}${unit ? ` ${unit}` : ""}`);
const plural = (n, word) => count(n, n === 1 ? word : `${word}s`);
const percent = (x) => (x == null ? DASH : `${(x * 100).toFixed(1)} %`);

function duration(secs) {
  if (secs == null || Number.isNaN(secs)) return DASH;
  if (secs < 1) return `${Math.round(secs * 1000)} ms`;
  if (secs < 10) return `${secs.toFixed(1)} s`;
  if (secs < 60) return `${Math.round(secs)} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min ${Math.round(secs % 60)} s`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
  return `${Math.floor(secs / 86400)} d ${Math.floor((secs % 86400) / 3600)} h`;
}

const millis = (ms) => (ms == null ? DASH : duration(ms / 1000));
// Unix seconds as "12 s ago"; under a second, or a clock a little ahead of ours, is "just now".
const ago = (unix) => (unix == null ? DASH : Date.now() - unix * 1000 < 1000 ? "just now" : `${duration(Math.floor(Date.now() / 1000 - unix))} ago`);

function bytes(n) {
  if (n == null) return DASH;
  const i = n < 1000 ? 0 : Math.min(4, Math.floor(Math.log10(n) / 3));
  return `${(n / 1000 ** i).toFixed(i ? 1 : 0)} ${["B", "KB", "MB", "GB", "TB"][i]}`;
}

const cells = (...values) => h("tr", null, values.map((v) => (v instanceof Node && v.tagName === "TD" ? v : h("td", null, v ?? DASH))));

function fill(table, rows, empty) {
  const body = $(`${table} tbody`);
  const columns = $(`${table} thead tr`).children.length;
  body.replaceChildren(...(rows.length ? rows : [h("tr", null, h("td", { colspan: columns, class: "muted" }, empty))]));
}

const colour = (tier) => `c${Math.max(0, tiers.findIndex((t) => t.name === tier)) % 6}`;

// Messages.
// One message per source, so a failing refresh updates its message instead of piling up.
function say(source, text, kind = "error") {
  const old = document.querySelector(`#messages [data-source="${source}"]`);
  if (!text) { old?.remove(); return; }
  const message = h("div", { class: `message ${kind}`, "data-source": source },
    h("span", null, text), h("button", { type: "button", class: "link", "aria-label": "Dismiss", onclick: () => message.remove() }, "×"));
  if (old) old.replaceWith(message); else $("#messages").append(message);
}

// The admin API.
class ApiError extends Error { constructor(status, message) { super(message); this.status = status; } }

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, `${method} ${path}: the server did not answer (${e.message})`);
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  // /api/health answers 503 with its report when a part is down: that is data, not an error.
  if (!response.ok && !(response.status === 503 && data?.status)) {
    const detail = data?.error?.message ?? (text.slice(0, 200) || response.statusText);
    throw new ApiError(response.status, `${method} ${path} failed (${response.status}): ${detail}`);
  }
  return data;
}

// Runs an action from a button; its error is shown, and the button is off while it runs.
async function act(source, button, action) {
  if (button) button.disabled = true;
  say(source, null);
  try { await action(); } catch (e) { say(source, e.message); } finally { if (button) button.disabled = false; }
}

// Sign-in.
// Checks a key against an admin route: 403 is a user key, 401 an unknown or revoked one.
async function signIn(candidate) {
  key = candidate;
  try {
    tiers = (await api("GET", "/admin/tiers")).data;
  } catch (e) {
    key = null;
    const why = e.status === 403 ? "This is a user key, not an admin key: sign in with a key whose role is admin."
      : e.status === 401 ? "This key is unknown, revoked or expired on this server." : e.message;
    signOut(why);
    return;
  }
  sessionStorage.setItem(STORE, candidate);
  $("#signin-key").value = "";
  for (const select of [$("#create-tier"), $("#filter-tier")]) {
    const keep = select.id === "filter-tier" ? [h("option", { value: "" }, "all")] : [];
    select.replaceChildren(...keep, ...tiers.map((t) => h("option", { value: t.name }, t.name)));
  }
  for (const [id, hidden] of [["#signin", true], ["#tabs", false], ["#who", false]]) $(id).hidden = hidden;
  show();
  refresh();
}

function signOut(why) {
  clearTimeout(timer);
  [timer, key, history] = [null, null, []];
  session += 1;
  samples.clear();
  sessionStorage.removeItem(STORE);
  // Nothing the admin key revealed stays on the page.
  for (const id of ["#messages", "#cards", "#default-now"]) $(id).replaceChildren();
  $("#secret").hidden = true;
  $("#secret-value").textContent = "";
  for (const body of document.querySelectorAll("tbody")) body.replaceChildren();
  for (const id of ["#tabs", "#who", "#overview", "#models", "#keys"]) $(id).hidden = true;
  $("#signin").hidden = false;
  $("#signin-error").hidden = !why;
  $("#signin-error").textContent = why ?? "";
}

// Tabs.
function show() {
  if (!key) return;
  const tab = ["overview", "models", "keys"].find((t) => `#${t}` === location.hash) ?? "overview";
  for (const link of document.querySelectorAll("#tabs a")) link.classList.toggle("active", link.dataset.tab === tab);
  for (const t of ["overview", "models", "keys"]) $(`#${t}`).hidden = t !== tab;
  if (tab !== "overview") act(tab, null, tab === "models" ? loadModels : loadKeys);
}

// Overview.
async function refresh() {
  const mine = session;
  const [queue, stats, health] = await Promise.allSettled([api("GET", "/admin/queue"), api("GET", "/admin/stats"), api("GET", "/api/health")]);
  if (mine !== session) return; // signed out (and maybe in again) meanwhile: that session polls
  const failed = [queue, stats, health].find((r) => r.status === "rejected" && [401, 403].includes(r.reason.status));
  if (failed) { signOut(`Signed out: ${failed.reason.message}`); return; }
  const value = (r, source) => { say(source, r.status === "rejected" ? r.reason.message : null); return r.value ?? null; };
  try {
    renderOverview(value(queue, "queue"), value(stats, "stats"), value(health, "health"));
    $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    say("render", null);
  } catch (e) {
    say("render", `The page could not show the data: ${e.message}`);
  }
  timer = setTimeout(refresh, POLL_MS);
}

function renderOverview(queue, stats, health) {
  const now = Date.now();
  const wait = new Map((stats?.tiers ?? []).map((t) => [t.tier, t.queue_wait]));
  if (queue) {
    const per = (field) => Object.fromEntries([...wait].map(([tier, w]) => [tier, w?.[field] ?? null]));
    history.push({ t: now, depth: Object.fromEntries(queue.tiers.map((t) => [t.tier, t.queued])), p50: per("p50_ms"), p95: per("p95_ms") });
    history = history.filter((p) => p.t >= now - WINDOW_MS);
  }
  renderCards(queue, stats, health);
  if (queue) {
    fill("#tiers-table", queue.tiers.map((t) => cells(
      h("td", null, h("span", { class: `swatch ${colour(t.tier)}` }), `${t.tier} `, h("span", { class: "muted" }, `p${t.priority}`)),
      h("td", { "data-tier": t.tier, class: "queued" }, `${count(t.queued)} / ${count(t.max_queued)}`),
      t.queued ? duration(t.oldest_wait_secs) : DASH, count(t.starving), count(t.rescues),
      t.starvation_secs == null ? DASH : duration(t.starvation_secs),
      millis(wait.get(t.tier)?.p50_ms), millis(wait.get(t.tier)?.p95_ms),
      h("td", null, h("button", { type: "button", class: "danger small", "data-clear": t.tier, onclick: (e) => clearQueue(e.target, t.tier, t.queued) }, "Clear")),
    )), "No tiers configured.");
    renderRunning(queue.running, now);
    fill("#workers-table", queue.workers.map((w) => cells(w.name, `${w.running} / ${plural(w.slots, "slot")}`, ago(w.last_seen))), "No worker has run a job yet.");
  }
  if (stats) {
    $("#since").textContent = `(${duration(stats.uptime_secs)}, since ${new Date(stats.started_at * 1000).toLocaleString()})`;
    fill("#stats-tiers", stats.tiers.map((t) => cells(t.tier, count(t.requests.total), count(t.requests.completed), count(t.requests.failed),
      count(t.requests.cancelled), count(t.requests.rejected), count(t.prompt_tokens, "tok"), count(t.completion_tokens, "tok"))), "No tiers.");
    fill("#stats-models", stats.models.map((m) => cells(m.model, m.tier, count(m.requests), count(m.prompt_tokens, "tok"), count(m.completion_tokens, "tok"))),
      "No request has completed yet.");
  }
  drawCharts(now);
}

function renderCards(queue, stats, health) {
  const part = (label, check) => h("div", { class: `stat ${check == null ? "" : check.ok ? "ok" : "down"}` },
    h("div", { class: "label" }, label), h("div", { class: "value" }, check == null ? DASH : check.ok ? "OK" : "Down"),
    h("div", { class: "detail", title: check?.detail ?? "" }, check?.detail ?? ""));
  const figure = (label, value, id, detail) => h("div", { class: "stat" }, h("div", { class: "label" }, label),
    h("div", { class: "value", id }, value), h("div", { class: "detail" }, detail ?? ""));
  const s = queue?.scheduling;
  $("#cards").replaceChildren(
    part("Ollama", health?.ollama), part("Queue backend", health?.queue), part("Key store", health?.key_store),
    figure("Queued", count(queue?.queued), "sum-queued", "jobs waiting"),
    figure("Running", count(queue?.running.length), "sum-running", queue ? plural(queue.workers.reduce((n, w) => n + w.slots, 0), "slot") : ""),
    figure("Throughput", s?.throughput_per_sec == null ? DASH : `${s.throughput_per_sec.toFixed(1)} jobs/s`, null, "recent"),
    figure("Rescue share", percent(s?.rescue_share), null, `recently ${percent(s?.recent_rescue_share)}`),
    figure("Uptime", stats ? duration(stats.uptime_secs) : DASH, null, health?.status ? `health: ${health.status}` : ""));
}

// Tokens per second over the last ~10 s of polls; until there are two polls, since the start.
function speed(job, now) {
  const seen = (samples.get(job.job_id) ?? []).filter((s) => s.t >= now - 10_000);
  seen.push({ t: now, tokens: job.tokens });
  samples.set(job.job_id, seen);
  if (now - seen[0].t >= 1000) return (job.tokens - seen[0].tokens) / ((now - seen[0].t) / 1000);
  const running = now / 1000 - job.started_at;
  return running >= 1 ? job.tokens / running : null;
}

function renderRunning(running, now) {
  const rows = running.map((j) => {
    const rate = speed(j, now);
    return cells(j.key_name ?? h("span", { class: "muted" }, j.key_id), j.tier, j.model, j.worker, ago(j.started_at),
      count(j.tokens, "tok"), rate == null ? DASH : `${rate.toFixed(1)} tok/s`);
  });
  const live = new Set(running.map((j) => j.job_id));
  for (const id of samples.keys()) if (!live.has(id)) samples.delete(id);
  fill("#running-table", rows, "Nothing is running.");
}

async function clearQueue(button, tier, queued) {
  const what = tier ? `the ${tier} queue (${plural(queued, "waiting job")})` : "every tier's queue";
  if (!confirm(`Clear ${what}? Waiting jobs fail with 503; running jobs go on.`)) return;
  await act("clear", button, async () => {
    const done = await api("DELETE", tier ? `/admin/queue/${encodeURIComponent(tier)}` : "/admin/queue");
    say("clear", `Cleared ${plural(done.cleared, "waiting job")} from ${tier ?? "all tiers"}.`, "notice");
  });
}

// Charts.
// A ceiling of at least `least` whose half is round too, so the three axis labels read well.
function nice(max, least) {
  const top = Math.max(max, least);
  const step = 10 ** Math.floor(Math.log10(top));
  return [1, 2, 4, 10].map((m) => m * step).find((v) => v >= top);
}

function chart(target, series, label, least, now) {
  const [W, H, L, R, T, B] = [600, 200, 80, 8, 10, 24];
  const values = series.flatMap((s) => s.points.map((p) => p.v)).filter((v) => v != null);
  const top = nice(Math.max(0, ...values), least);
  const span = Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, now - (history[0]?.t ?? now)));
  const x = (t) => L + ((t - (now - span)) / span) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  const nodes = [];
  for (const v of [0, top / 2, top]) {
    nodes.push(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    nodes.push(svg("text", { x: L - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, label(v)));
  }
  for (const [t, words, anchor] of [[now - span, `${Math.round(span / 60000)} min ago`, "start"], [now, "now", "end"]]) {
    nodes.push(svg("text", { x: x(t), y: H - 6, class: "axis", "text-anchor": anchor }, words));
  }
  for (const s of series) {
    // A gap in the data (no percentile yet) breaks the line instead of bridging it.
    let run = [];
    const flush = () => { if (run.length) nodes.push(svg("polyline", { points: run.join(" "), class: `line ${s.class}` })); run = []; };
    for (const p of s.points) if (p.v == null) flush(); else run.push(`${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
    flush();
  }
  if (!values.length) nodes.push(svg("text", { x: W / 2, y: H / 2, class: "axis", "text-anchor": "middle" }, "collecting data…"));
  $(target).replaceChildren(...nodes);
}

function drawCharts(now) {
  const points = (field, tier) => history.map((p) => ({ t: p.t, v: p[field][tier] ?? null }));
  chart("#chart-depth", tiers.map((t) => ({ class: colour(t.name), points: points("depth", t.name) })), (v) => count(v), 2, now);
  chart("#chart-wait", tiers.flatMap((t) => [
    { class: `${colour(t.name)} p95`, points: points("p95", t.name) },
    { class: `${colour(t.name)} p50`, points: points("p50", t.name) },
  ]), (v) => millis(v), 1000, now);
  for (const id of ["#legend-depth", "#legend-wait"]) {
    $(id).replaceChildren(...tiers.map((t) => h("span", null, h("span", { class: `swatch ${colour(t.name)}` }), t.name)));
  }
}

// Models.
async function loadModels() {
  const [models, current] = await Promise.all([api("GET", "/admin/models"), api("GET", "/admin/models/default")]);
  $("#default-now").replaceChildren(current.model ? h("strong", { id: "default-model" }, current.model) : "No model is installed.",
    current.selected ? ` (selected by an admin${current.selected === current.model ? "" : `: ${current.selected}, not installed`})`
      : " (none selected: the newest installed model)");
  $("#default-select").replaceChildren(...models.data.map((m) => h("option", { value: m.name, selected: m.name === current.model }, m.name)));
  fill("#models-table", models.data.map((m) => cells(
    h("td", null, m.name, m.default ? h("span", { class: "badge" }, "default") : null),
    m.family, m.parameter_size, m.quantization_level, count(m.context_length, "tok"), bytes(m.size),
    m.capabilities.join(", ") || DASH, ago(Date.parse(m.modified_at) / 1000))), "No model is installed.");
  fill("#aliases-table", models.aliases.map((a) => cells(a.alias, a.target, a.resolves_to ?? h("span", { class: "error" }, "not installed"))),
    "No aliases are configured.");
}

// Keys.
async function loadKeys() {
  const query = new URLSearchParams([["tier", $("#filter-tier").value], ["revoked", $("#filter-revoked").value]].filter(([, v]) => v));
  const keys = await api("GET", `/admin/keys${query.size ? `?${query}` : ""}`);
  fill("#keys-table", keys.data.map(keyRow), "No key matches.");
}

function keyRow(k) {
  const status = k.revoked_at ? h("span", { class: "error" }, `revoked ${ago(k.revoked_at)}`)
    : k.expires_at ? `expires ${new Date(k.expires_at * 1000).toLocaleString()}` : "active";
  const actions = k.revoked_at ? h("td") : h("td", { class: "actions" },
    h("button", { type: "button", class: "secondary small", onclick: () => editRow(row, k) }, "Edit"),
    h("button", { type: "button", class: "danger small", "data-revoke": k.id, onclick: (e) => revoke(e.target, k) }, "Revoke"));
  const row = cells(k.name, h("td", null, h("code", null, k.id)), k.tier, k.role, ago(k.created_at), status, actions);
  row.dataset.key = k.id;
  return row;
}

function editRow(row, k) {
  const name = h("input", { value: k.name, maxlength: 200, "aria-label": "Name" });
  const tier = h("select", { "aria-label": "Tier" }, tiers.map((t) => h("option", { value: t.name, selected: t.name === k.tier }, t.name)));
  const save = h("button", { type: "button", class: "small" }, "Save");
  save.addEventListener("click", () => act("keys", save, async () => {
    const changes = {};
    if (name.value.trim() !== k.name) changes.name = name.value;
    if (tier.value !== k.tier) changes.tier = tier.value;
    if (Object.keys(changes).length) await api("PATCH", `/admin/keys/${k.id}`, changes);
    await loadKeys();
  }));
  const cancel = h("button", { type: "button", class: "secondary small", onclick: () => row.replaceWith(keyRow(k)) }, "Cancel");
  row.replaceWith(cells(h("td", null, name), h("td", null, h("code", null, k.id)), h("td", null, tier), k.role, ago(k.created_at), "editing",
    h("td", { class: "actions" }, save, cancel)));
}

async function revoke(button, k) {
  if (!confirm(`Revoke the key "${k.name}" (${k.tier})? Its requests are refused from now on.`)) return;
  await act("keys", button, async () => { await api("DELETE", `/admin/keys/${k.id}`); await loadKeys(); });
}

async function copySecret() {
  const secret = $("#secret-value").textContent;
  try {
    await navigator.clipboard.writeText(secret);
  } catch {
    // No clipboard API outside secure contexts (plain http to another host): select it instead.
    getSelection().selectAllChildren($("#secret-value"));
    if (!document.execCommand("copy")) { say("copy", "Copying failed: the secret is selected, copy it by hand."); return; }
  }
  $("#secret-copy").textContent = "Copied";
}

// Wiring.
document.addEventListener("DOMContentLoaded", () => {
  $("#signin-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("#signin-key").value.trim()); });
  $("#sign-out").addEventListener("click", () => signOut(null));
  $("#clear-all").addEventListener("click", (e) => clearQueue(e.target, null, null));
  $("#default-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act("models", e.submitter, async () => { await api("PUT", "/admin/models/default", { model: $("#default-select").value }); await loadModels(); });
  });
  $("#create-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act("keys", e.submitter, async () => {
      const created = await api("POST", "/admin/keys", { name: $("#create-name").value, tier: $("#create-tier").value, role: $("#create-role").value });
      $("#secret-name").textContent = `${created.name} (${created.tier}, ${created.role})`;
      $("#secret-value").textContent = created.key;
      $("#secret-copy").textContent = "Copy";
      $("#secret").hidden = false;
      $("#create-name").value = "";
      await loadKeys();
    });
  });
  $("#secret-copy").addEventListener("click", copySecret);
  $("#secret-done").addEventListener("click", () => { $("#secret").hidden = true; $("#secret-value").textContent = ""; });
  $("#filter-form").addEventListener("change", () => act("keys", null, loadKeys));
  window.addEventListener("hashchange", show);
  const stored = sessionStorage.getItem(STORE);
  if (stored) signIn(stored); else signOut(null);
});

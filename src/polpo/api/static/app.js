// Polpo dashboard: plain JS over /api/v1, no build step.
//
// Signed in by the session cookie the one-time link set; every write sends
// JSON from this origin (the server refuses anything else). Live: the event
// log (/api/v1/events) tells when tasks, approvals, pairing requests or peers
// changed, and /api/v1/channels/stream sends the channel rows (state, QR
// code, account) whenever they change. No inline script or style: the CSP
// forbids both.
"use strict";

const API = "/api/v1";

// Event types after which the lists are read again.
const EVENT_TYPES = [
  "task:created", "task:started", "task:start", "task:complete", "task:done", "task:failed",
  "task:cancelled", "task:retried", "task:revised", "approval:requested", "approval:resolved",
  "peer:pairing_requested", "peer:paired", "peer:allowed", "peer:revoked", "peer:linked",
  "peer:unlinked", "mission:created", "mission:started", "mission:completed", "mission:failed",
  "channel:connected", "channel:disconnected",
];

// -- text ---------------------------------------------------------------------------

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

// Escaped text whose `backticked` parts (command names) become <code>.
function words(s) {
  return esc(s).replace(/`([^`]+)`/g, "<code>$1</code>");
}

function age(ts) {
  if (!ts) return "";
  const s = Math.max(0, Date.now() / 1000 - ts);
  if (s < 60) return Math.floor(s) + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  if (s < 86400) return Math.floor(s / 3600) + "h";
  return Math.floor(s / 86400) + "d";
}

function phone(peerId) {
  const [channel, id] = String(peerId).split(":", 2);
  return channel === "whatsapp" && /^\d+$/.test(id || "") ? "+" + id : peerId;
}

const PLATFORMS = {whatsapp: "WhatsApp", telegram: "Telegram"};

function platformOf(channel) {
  return PLATFORMS[String(channel).split(":")[0]] || channel;
}

function who(name, peerId) {
  return name ? `${name} (${phone(peerId)})` : phone(peerId);
}

// -- the API --------------------------------------------------------------------------

class SignedOut extends Error {}

async function api(path, options = {}) {
  const init = {...options, credentials: "same-origin", headers: {"Accept": "application/json"}};
  if (init.method && init.method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(init.body ?? {});
  }
  const res = await fetch(API + path, init);
  if (res.status === 401) throw new SignedOut("Signed out (polpo serve restarted?): open the link polpo serve printed, or run polpo dashboard for a fresh one.");
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function showError(e) {
  document.getElementById("error").textContent = e ? String(e.message || e) : "";
}

function notice(text) {
  const el = document.getElementById("notice");
  el.textContent = text;
  el.classList.toggle("shown", Boolean(text));
}

// -- rendering ------------------------------------------------------------------------

function renderStatus(s) {
  document.getElementById("title").textContent = "Polpo — " + s.project;
  document.title = "Polpo — " + s.project;
  const counts = Object.entries(s.tasks).filter(([, n]) => n).map(([k, n]) => `${esc(k.replace("_", " "))} ${n}`).join(" · ") || "no tasks yet";
  const active = s.agents.filter((a) => a.status === "active");
  document.getElementById("status").innerHTML =
    `<div>Tasks: ${counts}</div>` +
    `<div>Agents: ${active.length} working, ${s.agents.length - active.length} idle` +
    (active.length ? " — " + active.map((a) => esc(a.name) + ": " + a.runningTasks.map((t) => esc(t.title)).join(", ")).join("; ") : "") + `</div>` +
    `<div>Pending approvals: ${s.pendingApprovals}</div>` +
    `<div>Peers seen in the last 5 minutes: ${s.connectedCount}${s.connectedPeers.length ? " — " + s.connectedPeers.map((p) => esc(phone(p))).join(", ") + (s.connectedCount > s.connectedPeers.length ? " …" : "") : ""}</div>`;
}

// Deadlines (ms, this browser's clock) for the countdowns, set when a row arrives.
const deadlines = {};
const shownStates = {};

// Not linked, and nobody asked yet: serve runs no worker until someone does.
// Opening the dashboard is asking (once per page load); the button asks again.
const askedToLink = new Set();
function linkOnOpen(channel) {
  if (askedToLink.has(channel)) return;
  askedToLink.add(channel);
  api(`/channels/${encodeURIComponent(channel)}/login`, {method: "POST"}).catch(showError);
}

function renderChannels(list) {
  const el = document.getElementById("channels");
  if (!list.length) { el.innerHTML = '<span class="muted">No channel has run yet.</span>'; return; }
  const now = Date.now();
  el.innerHTML = list.map((c) => {
    const name = esc(c.channel);
    const kind = c.platform || c.channel;
    let html = `<div class="channel tone-${esc(c.tone)}" data-channel="${name}">` +
      `<div class="channel-head"><strong>${esc(kind)}</strong> <span class="pill ${esc(c.state)}">${esc(c.state.replace(/_/g, " "))}</span></div>` +
      `<p class="summary">${words(c.summary)}`;
    if (c.retryAt && c.retryAt > c.serverTime) {
      deadlines[`retry:${c.channel}`] = now + (c.retryAt - c.serverTime) * 1000;
      html += ` <span class="countdown" data-deadline="retry:${name}" data-label="Retrying in"></span>`;
    }
    html += "</p>";
    if (c.qr) {
      const key = `qr:${c.channel}:${c.qrVersion}`;
      if (!(key in deadlines) && c.qrExpiresIn != null) deadlines[key] = now + c.qrExpiresIn * 1000;
      html += `<div class="qr"><img alt="QR code to link ${esc(kind)}" src="${API}/channels/${encodeURIComponent(c.channel)}/qr.svg?v=${esc(c.qrVersion)}">` +
        `<p class="countdown" data-deadline="${esc(key)}" data-label="This code changes in"></p></div>`;
    }
    if (c.live && c.live.login === "expired") {
      html += `<div><button class="ok" data-relogin="${name}">New QR code</button></div>`;
    }
    if (c.live && c.live.login === "idle") {
      html += `<div><button class="ok" data-relogin="${name}">Link ${esc(kind)}</button></div>`;
      linkOnOpen(c.channel);
    }
    if (c.technical) {
      html += `<details><summary>Technical detail</summary><p class="tech">${words(c.technical)}</p></details>`;
    }
    return html + "</div>";
  }).join("");
  for (const c of list) {
    if (shownStates[c.channel] === "waiting_for_login" && c.state === "connected") {
      notice(`${c.platform || c.channel} is linked: ${c.summary.replace(/^Connected as /, "").replace(/\.$/, "")}. Messages to this account now reach Polpo.`);
    }
    shownStates[c.channel] = c.state;
  }
  tick();
}

function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll("[data-deadline]")) {
    const at = deadlines[el.dataset.deadline];
    if (at == null) { el.textContent = ""; continue; }
    const left = Math.max(0, Math.ceil((at - now) / 1000));
    el.textContent = `${el.dataset.label} ${left} s`;
  }
}

function renderPairing(list) {
  const el = document.getElementById("pairing");
  if (!list.length) { el.innerHTML = '<span class="muted">Nobody is waiting to be let in.</span>'; return; }
  el.innerHTML = "<table><tr><th>Who</th><th>Channel</th><th>Code</th><th>Asked</th><th></th></tr>" +
    list.map((r) => `<tr data-pairing="${esc(r.code)}"><td>${esc(who(r.displayName, r.peerId))}</td>` +
      `<td>${esc(platformOf(r.channel))}</td><td><code>${esc(r.code)}</code></td><td>${age(r.createdAt)} ago</td>` +
      `<td><button class="ok" data-pair="${esc(r.code)}" data-who="${esc(who(r.displayName, r.peerId))}" data-channel="${esc(platformOf(r.channel))}">Let in</button></td></tr>`).join("") +
    "</table>";
}

// A reject form being written survives the re-renders live updates cause.
let rejecting = null;
const drafts = {};

function renderApprovals(list) {
  const el = document.getElementById("approvals");
  if (rejecting && !list.some((a) => a.id === rejecting)) rejecting = null;
  if (!list.length) { el.innerHTML = '<span class="muted">Nothing waits for you.</span>'; return; }
  el.innerHTML = "<table><tr><th>ID</th><th>Gate</th><th>Task</th><th>Agent</th><th>Waiting</th><th></th></tr>" +
    list.map((a) => {
      let row = `<tr data-approval="${esc(a.id)}"><td><code>${esc(a.shortId)}</code></td><td>${esc(a.gate)} <span class="muted">${esc(a.hook)}</span></td>` +
        `<td><code>${esc(a.taskShortId)}</code> ${esc(a.taskTitle)}${a.summary ? `<div class="muted">${esc(a.summary)}</div>` : ""}</td>` +
        `<td>${esc(a.agent)}</td><td>${age(a.requestedAt)}</td>` +
        `<td class="actions"><button class="ok" data-approve="${esc(a.id)}" data-short="${esc(a.shortId)}" data-title="${esc(a.taskTitle)}">Approve</button>` +
        `<button class="no" data-reject="${esc(a.id)}">Reject…</button></td></tr>`;
      if (rejecting === a.id) {
        row += `<tr class="reject-row"><td colspan="6"><form data-reject-form="${esc(a.id)}" data-short="${esc(a.shortId)}" data-title="${esc(a.taskTitle)}">` +
          `<label for="reason-${esc(a.id)}">Why? The agent gets this as feedback.</label>` +
          `<textarea id="reason-${esc(a.id)}" name="reason" rows="3" maxlength="4000" required>${esc(drafts[a.id] || "")}</textarea>` +
          `<div><button type="submit" class="no">Reject ${esc(a.shortId)}</button><button type="button" data-cancel-reject="1">Cancel</button></div></form></td></tr>`;
      }
      return row;
    }).join("") + "</table>";
  const box = rejecting && el.querySelector("textarea");
  if (box) box.focus();
}

function renderTasks(list) {
  const el = document.getElementById("tasks");
  if (!list.length) { el.innerHTML = '<span class="muted">No tasks yet.</span>'; return; }
  el.innerHTML = "<table><tr><th>ID</th><th>Status</th><th>Title</th><th>Agent</th><th>Age</th><th></th></tr>" +
    list.map((t) => `<tr data-task="${esc(t.id)}"><td><code>${esc(t.shortId)}</code></td><td><span class="pill ${esc(t.status)}">${esc(t.status.replace(/_/g, " "))}</span></td>` +
      `<td>${esc(t.title)}</td><td>${esc(t.agent)}</td><td>${age(t.createdAt)}</td>` +
      `<td>${t.status === "failed" ? `<button data-retry="${esc(t.id)}" data-short="${esc(t.shortId)}">Retry</button>` : ""}</td></tr>`).join("") +
    "</table>";
}

function renderPeers(list) {
  const el = document.getElementById("peers");
  const inside = list.filter((p) => p.allowed && !p.linkedTo);
  if (!inside.length) { el.innerHTML = '<span class="muted">Nobody but you yet.</span>'; return; }
  const why = {allowlist: "let in", allowFrom: "in the config (allowFrom)", admin: "admin", open: "open policy", linked: "linked"};
  el.innerHTML = "<table><tr><th>Who</th><th>Channel</th><th>Why</th><th>Last seen</th><th></th></tr>" +
    inside.map((p) => `<tr data-peer="${esc(p.id)}"><td>${esc(who(p.displayName, p.id))}</td><td>${esc(platformOf(p.channel))}</td>` +
      `<td>${esc(why[p.why] || p.why)}</td><td>${p.lastSeen ? age(p.lastSeen) + " ago" : ""}</td>` +
      `<td>${p.why === "allowlist" ? `<button class="no" data-revoke="${esc(p.id)}" data-who="${esc(who(p.displayName, p.id))}">Revoke</button>` : ""}</td></tr>`).join("") +
    "</table>";
}

// -- loading --------------------------------------------------------------------------

let signedOut = false;

async function refresh() {
  if (signedOut) return;
  try {
    const [status, pairing, approvals, tasks, peers] = await Promise.all([
      api("/status"), api("/pairing"), api("/approvals"), api("/tasks?limit=50"), api("/peers"),
    ]);
    renderStatus(status); renderPairing(pairing); renderApprovals(approvals); renderTasks(tasks); renderPeers(peers);
    showError(null);
  } catch (e) {
    failed(e);
  }
}

function failed(e) {
  showError(e);
  if (e instanceof SignedOut) {
    signedOut = true;
    for (const s of streams) s.close();
    setLive(false, "signed out");
  }
}

// Several events in a burst cause one reload.
let pending = null;
function soon() {
  if (pending) return;
  pending = setTimeout(() => { pending = null; refresh(); }, 100);
}

// -- live -----------------------------------------------------------------------------

const streams = [];

function setLive(on, text) {
  const el = document.getElementById("live");
  el.textContent = text;
  el.classList.toggle("on", on);
  el.classList.toggle("off", !on);
}

function follow() {
  const events = new EventSource(`${API}/events`);
  for (const type of EVENT_TYPES) events.addEventListener(type, soon);
  events.onopen = () => { setLive(true, "live"); soon(); };
  events.onerror = () => {
    setLive(false, "reconnecting…");
    api("/health").then(() => api("/status")).catch(failed);
  };
  const channels = new EventSource(`${API}/channels/stream`);
  channels.addEventListener("channels", (ev) => renderChannels(JSON.parse(ev.data)));
  streams.push(events, channels);
}

// -- actions --------------------------------------------------------------------------

async function act(run) {
  try {
    notice(await run());
    showError(null);
    await refresh();
  } catch (e) {
    failed(e);
  }
}

document.addEventListener("click", (ev) => {
  const t = ev.target.closest("button");
  if (!t) return;
  const d = t.dataset;
  if (d.approve) {
    act(async () => {
      await api(`/approvals/${encodeURIComponent(d.approve)}/approve`, {method: "POST", body: {by: "dashboard"}});
      return `Approved ${d.short}: “${d.title}” goes on.`;
    });
  } else if (d.reject) {
    rejecting = rejecting === d.reject ? null : d.reject;
    soon();
  } else if (d.cancelReject) {
    rejecting = null;
    soon();
  } else if (d.pair) {
    act(async () => {
      await api(`/pairing/${encodeURIComponent(d.pair)}/approve`, {method: "POST", body: {by: "dashboard"}});
      return `Let in ${d.who}; they were told on ${d.channel}.`;
    });
  } else if (d.revoke) {
    act(async () => {
      await api(`/peers/${encodeURIComponent(d.revoke)}/revoke`, {method: "POST", body: {by: "dashboard"}});
      return `Revoked ${d.who}: their messages no longer reach Polpo.`;
    });
  } else if (d.retry) {
    act(async () => {
      await api(`/tasks/${encodeURIComponent(d.retry)}/retry`, {method: "POST", body: {by: "dashboard"}});
      return `Task ${d.short} is queued again.`;
    });
  } else if (d.relogin) {
    act(async () => {
      const r = await api(`/channels/${encodeURIComponent(d.relogin)}/login`, {method: "POST"});
      return r.requested ? "Asked WhatsApp for a new QR code…" : "No new QR code was needed.";
    });
  }
});

document.addEventListener("input", (ev) => {
  const form = ev.target.closest("form[data-reject-form]");
  if (form) drafts[form.dataset.rejectForm] = ev.target.value;
});

document.addEventListener("submit", (ev) => {
  const form = ev.target.closest("form[data-reject-form]");
  if (!form) return;
  ev.preventDefault();
  const id = form.dataset.rejectForm;
  const reason = form.querySelector("textarea").value.trim();
  if (!reason) return;
  act(async () => {
    await api(`/approvals/${encodeURIComponent(id)}/reject`, {method: "POST", body: {reason, by: "dashboard"}});
    rejecting = null;
    delete drafts[id];
    return `Rejected ${form.dataset.short}: “${form.dataset.title}”; the agent gets your reason.`;
  });
});

setInterval(tick, 1000);
setInterval(soon, 60000);  // a safety net for events this page does not know
follow();
refresh();

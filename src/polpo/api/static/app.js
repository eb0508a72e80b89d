// Polpo dashboard: plain JS over /api/v1, no build step.
// The session cookie (set by the one-time link polpo serve prints) authenticates
// every request; writes send JSON from this origin, as the server requires.
"use strict";

const API = "/api/v1";

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

function age(ts) {
  if (!ts) return "";
  const s = Math.max(0, Date.now() / 1000 - ts);
  if (s < 60) return Math.floor(s) + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  if (s < 86400) return Math.floor(s / 3600) + "h";
  return Math.floor(s / 86400) + "d";
}

class SignedOut extends Error {}

async function api(path, options = {}) {
  const init = {...options, credentials: "same-origin", headers: {"Accept": "application/json"}};
  if (init.method && init.method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    init.body = init.body ?? "{}";
  }
  const res = await fetch(API + path, init);
  if (res.status === 401) throw new SignedOut("Signed out: open the link polpo serve printed, or run polpo dashboard for a fresh one.");
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function showError(e) {
  document.getElementById("error").textContent = e ? String(e.message || e) : "";
}

function renderStatus(s) {
  document.getElementById("title").textContent = "Polpo — " + s.project;
  document.title = "Polpo — " + s.project;
  const counts = Object.entries(s.tasks).filter(([, n]) => n).map(([k, n]) => `${esc(k)} ${n}`).join(" · ") || "no tasks yet";
  const active = s.agents.filter((a) => a.status === "active");
  document.getElementById("status").innerHTML =
    `<div>Tasks: ${counts}</div>` +
    `<div>Agents: ${active.length} active, ${s.agents.length - active.length} idle` +
    (active.length ? " — " + active.map((a) => esc(a.name) + ": " + a.runningTasks.map((t) => esc(t.title)).join(", ")).join("; ") : "") + `</div>` +
    `<div>Pending approvals: ${s.pendingApprovals}</div>` +
    `<div>Peers seen in the last 5 minutes: ${s.connectedPeers.length ? s.connectedPeers.map(esc).join(", ") : "none"}</div>`;
}

function renderChannels(list) {
  const el = document.getElementById("channels");
  if (!list.length) { el.innerHTML = '<span class="muted">No channel has run yet.</span>'; return; }
  el.innerHTML = "<table><tr><th>Channel</th><th>State</th><th>Account</th><th>Detail</th></tr>" +
    list.map((c) => `<tr><td>${esc(c.channel)}</td><td><span class="pill ${esc(c.state)}">${esc(c.state)}</span></td>` +
      `<td>${esc(c.account)}</td><td>${esc(c.detail)}` +
      (c.qr ? `<div class="qr"><p>Scan with WhatsApp → Settings → Linked devices → Link a device:</p><img alt="QR code" data-qr="${esc(c.channel)}" src="${qrImages[c.channel] || ""}"></div>` : "") +
      (c.live && c.live.login === "expired" ? `<div><button class="ok" data-relogin="${esc(c.channel)}">New QR code</button></div>` : "") +
      `</td></tr>`).join("") + "</table>";
  for (const img of el.querySelectorAll("img[data-qr]")) loadQr(img);
}

// The QR image is loaded with the session cookie; a new URL each render so it follows rotations.
const qrImages = {};
function loadQr(img) {
  img.src = `${API}/channels/${encodeURIComponent(img.dataset.qr)}/qr.svg?t=${Date.now()}`;
}

// QR codes run out after a few minutes; opening (or reloading) the page asks for new ones.
let askedForQr = false;
async function askForNewQr(channels) {
  if (askedForQr) return;
  askedForQr = true;
  for (const c of channels) {
    if (c.live && c.live.login === "expired") await api(`/channels/${encodeURIComponent(c.channel)}/login`, {method: "POST"});
  }
}

function renderApprovals(list) {
  const el = document.getElementById("approvals");
  if (!list.length) { el.innerHTML = '<span class="muted">Nothing waits for you.</span>'; return; }
  el.innerHTML = "<table><tr><th>ID</th><th>Gate</th><th>Task</th><th>Agent</th><th>Age</th><th></th></tr>" +
    list.map((a) => `<tr><td><code>${esc(a.shortId)}</code></td><td>${esc(a.gate)} <span class="muted">${esc(a.hook)}</span></td>` +
      `<td><code>${esc(a.taskShortId)}</code> ${esc(a.taskTitle)}${a.summary ? `<div class="muted">${esc(a.summary)}</div>` : ""}</td>` +
      `<td>${esc(a.agent)}</td><td>${age(a.requestedAt)}</td>` +
      `<td><button class="ok" data-approve="${esc(a.id)}">Approve</button><button class="no" data-reject="${esc(a.id)}">Reject</button></td></tr>`).join("") +
    "</table>";
}

function renderPairing(list) {
  const el = document.getElementById("pairing");
  if (!list.length) { el.innerHTML = '<span class="muted">Nobody is waiting to be let in.</span>'; return; }
  el.innerHTML = "<table><tr><th>Code</th><th>Who</th><th>Channel</th><th>Asked</th><th></th></tr>" +
    list.map((r) => `<tr><td><code>${esc(r.code)}</code></td><td>${esc(r.displayName || "")} <span class="muted">${esc(r.peerId)}</span></td>` +
      `<td>${esc(r.channel)}</td><td>${age(r.createdAt)}</td>` +
      `<td><button class="ok" data-pair="${esc(r.code)}">Let in</button></td></tr>`).join("") + "</table>";
}

function renderTasks(list) {
  const el = document.getElementById("tasks");
  if (!list.length) { el.innerHTML = '<span class="muted">No tasks yet.</span>'; return; }
  el.innerHTML = "<table><tr><th>ID</th><th>Status</th><th>Title</th><th>Agent</th><th>Age</th></tr>" +
    list.map((t) => `<tr><td><code>${esc(t.shortId)}</code></td><td><span class="pill">${esc(t.status)}</span></td>` +
      `<td>${esc(t.title)}</td><td>${esc(t.agent)}</td><td>${age(t.createdAt)}</td></tr>`).join("") + "</table>";
}

async function refresh() {
  try {
    const [status, channels, pairing, approvals, tasks] = await Promise.all([
      api("/status"), api("/channels"), api("/pairing"), api("/approvals"), api("/tasks?limit=50"),
    ]);
    await askForNewQr(channels);
    renderStatus(status); renderChannels(channels); renderPairing(pairing); renderApprovals(approvals); renderTasks(tasks);
    showError(null);
  } catch (e) {
    showError(e);
    if (e instanceof SignedOut) clearInterval(poller);
  }
}

document.addEventListener("click", async (ev) => {
  const t = ev.target;
  try {
    if (t.dataset.approve) {
      await api(`/approvals/${t.dataset.approve}/approve`, {method: "POST", body: JSON.stringify({by: "dashboard"})});
    } else if (t.dataset.reject) {
      const reason = prompt("Why? (the agent gets this as feedback)");
      if (!reason || !reason.trim()) return;
      await api(`/approvals/${t.dataset.reject}/reject`, {method: "POST", body: JSON.stringify({reason, by: "dashboard"})});
    } else if (t.dataset.relogin) {
      await api(`/channels/${encodeURIComponent(t.dataset.relogin)}/login`, {method: "POST"});
    } else if (t.dataset.pair) {
      await api(`/pairing/${encodeURIComponent(t.dataset.pair)}/approve`, {method: "POST", body: JSON.stringify({by: "dashboard"})});
    } else return;
    await refresh();
  } catch (e) { showError(e); }
});

const poller = setInterval(refresh, 3000);
refresh();

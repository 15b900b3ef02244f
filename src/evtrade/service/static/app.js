// evtrade web app: calls the REST API, re-renders on server-sent events. No framework, no CDN.
"use strict";

const page = document.body.dataset.page;
const params = new URLSearchParams(location.search);
const me = params.get("address");
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const num = (x, d = 3) => (x === null || x === undefined ? "" : Number(x).toFixed(d));
// Public views carry accounts, not names: show an account short.
const short = (a) => (a ? `${String(a).slice(0, 6)}…${String(a).slice(-4)}` : "");

async function api(method, path, body) {
  const res = await fetch(path, {method, headers: {"Content-Type": "application/json"}, body: body ? JSON.stringify(body) : undefined});
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const d = data.detail;
    const msg = Array.isArray(d) ? d.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ") : d;
    throw new Error(msg || res.statusText);
  }
  return data;
}

function fail(err) { $("error").textContent = err.message; }
function ok() { $("error").textContent = ""; }
function password() { return $("password") ? $("password").value : ""; }
function formData(form) {
  const out = {};
  for (const [k, v] of new FormData(form).entries()) out[k] = form.elements[k].type === "number" ? Number(v) : v;
  return out;
}

function countdown(r) {
  const now = Date.now() / 1000;
  if (r.phase === "bidding") return `bids close in ${Math.max(0, Math.round(r.deadline - now))} s`;
  if (r.phase === "closing") return "bids closed; bids admitted in time are reaching the chain";
  if (r.phase === "reveal") return `offers open; the RSU settles in ${Math.max(0, Math.round(r.reveal_deadline - now))} s`;
  return r.phase;
}

function svgPlot(svg, points) {
  const w = +svg.getAttribute("width"), h = +svg.getAttribute("height"), pad = 30;
  if (!points.length) { svg.innerHTML = `<text x="${pad}" y="${h / 2}">no trades yet</text>`; return; }
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs) || 1], [y0, y1] = [Math.min(...ys) * 0.95, Math.max(...ys) * 1.05];
  const sx = (x) => pad + (x - x0) / ((x1 - x0) || 1) * (w - 2 * pad), sy = (y) => h - pad - (y - y0) / ((y1 - y0) || 1) * (h - 2 * pad);
  svg.innerHTML = `<line x1="${pad}" y1="${h - pad}" x2="${w - pad}" y2="${h - pad}" stroke="#999"/>
    <line x1="${pad}" y1="${pad}" x2="${pad}" y2="${h - pad}" stroke="#999"/>
    <text x="${pad}" y="${pad - 8}" font-size="11">price (tokens/kWh) by block</text>
    <text x="2" y="${sy(y1) + 4}" font-size="10">${y1.toFixed(2)}</text><text x="2" y="${sy(y0)}" font-size="10">${y0.toFixed(2)}</text>
    ${points.map((p) => `<circle cx="${sx(p[0])}" cy="${sy(p[1])}" r="3" fill="#1f5fbf"/>`).join("")}`;
}

async function renderRsu() {
  const rounds = await api("GET", "/api/rounds");
  const clock = (t) => new Date(t * 1000).toLocaleTimeString();
  const failure = (e) => e ? `<span class="error">${esc(e.message)}</span>
    <small>failing since ${clock(e.since)}, ${e.attempts} attempt(s), next at ${clock(e.retry_at)}</small>` : "";
  $("rounds").innerHTML = `<table><tr><th>round</th><th>phase</th><th>requests</th><th>replies</th><th>trades</th><th>kWh</th><th>error</th></tr>
    ${rounds.map((r) => `<tr><td>${r.round_id}</td><td>${esc(countdown(r))}</td><td>${r.requests.length}</td><td>${r.replies.length}</td>
    <td>${r.trades.length}</td><td>${num(r.trades.reduce((a, t) => a + t.kwh, 0))}</td><td class="round-error">${failure(r.error)}</td></tr>`).join("")}</table>`;
  svgPlot($("prices"), rounds.flatMap((r) => r.trades.map((t) => [t.block, t.price])));
  const chain = await api("GET", "/api/chain");
  // The map shows where bids were placed (the chain records each bid's location), by account.
  const placed = new Map();
  for (const r of rounds) for (const b of r.requests.concat(r.replies)) if (!placed.has(b.address)) placed.set(b.address, {name: short(b.address), lat: b.lat, lon: b.lon, rsu: false});
  const pts = [...placed.values()].concat([{name: "RSU", lat: chain.rsu.lat, lon: chain.rsu.lon, rsu: true}]);
  const map = $("map"), w = 320, h = 220;
  const lats = pts.map((p) => p.lat), lons = pts.map((p) => p.lon);
  const la0 = Math.min(...lats) - 0.01, la1 = Math.max(...lats) + 0.01, lo0 = Math.min(...lons) - 0.01, lo1 = Math.max(...lons) + 0.01;
  map.innerHTML = `<rect width="${w}" height="${h}" fill="#f4f7fa"/>` + pts.map((p) => {
    const x = 10 + (p.lon - lo0) / (lo1 - lo0) * (w - 20), y = h - 10 - (p.lat - la0) / (la1 - la0) * (h - 20);
    return `<circle cx="${x}" cy="${y}" r="${p.rsu ? 7 : 4}" fill="${p.rsu ? "#b42318" : "#2a9d4b"}"/><text x="${x + 6}" y="${y - 4}" font-size="10">${esc(p.name)}</text>`;
  }).join("");
  $("blocks").innerHTML = `<tr><th>block</th><th>time</th><th>transactions</th></tr>` + chain.blocks.map((b) =>
    `<tr><td>${b.number}</td><td>${new Date(b.timestamp * 1000).toLocaleTimeString()}</td><td>${b.transactions.map((t) => `<code>${esc(t.slice(0, 18))}…</code>`).join(" ")}</td></tr>`).join("");
}

// Each page's script registers its renderer (renderers[page]) and its form handlers (wirers).
const renderers = {rsu: renderRsu};
const wirers = [];
let busy = false;
async function render() {
  if (busy) return;
  busy = true;
  try { if (renderers[page]) await renderers[page](); } catch (err) { fail(err); } finally { busy = false; }
}

// The page scripts (driver.js, ...) load after this one: start once they all have.
window.addEventListener("DOMContentLoaded", () => {
  for (const w of wirers) w();
  render();
  const events = new EventSource("/api/events");
  events.onopen = () => $("live").classList.add("on");
  events.onerror = () => $("live").classList.remove("on");
  events.onmessage = () => render();
  setInterval(render, 2000); // countdowns
});

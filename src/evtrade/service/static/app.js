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

// The vehicle's own details (name, plate, location) come only after its password; kept here.
let mine = null;
async function myDetails() {
  if (mine) return mine;
  if (!me || !password()) return null;
  mine = await api("POST", `/api/vehicles/${me}/details`, {password: password()});
  return mine;
}

async function renderAccount() {
  if (!me || !$("account")) return null;
  const v = await api("GET", `/api/vehicles/${me}`);
  const own = mine ? `${esc(mine.name)} <small>${esc(mine.plate)}</small>` : `Vehicle <small>${esc(short(v.address))}</small>`;
  $("account").innerHTML = `<h2>${own}</h2>
    <p>Account <code id="address">${esc(v.address)}</code> &middot; plate hash <code>${esc(short(v.plate_hash))}</code></p>
    <p>Balance <b id="balance">${num(v.balance, 4)}</b> tokens &middot; credit ${num(v.credit, 4)} &middot;
    energy bought <b id="bought">${num(v.energy_bought)}</b> kWh, sold <b id="sold">${num(v.energy_sold)}</b> kWh</p>`;
  return {...v, lat: mine ? mine.lat : null, lon: mine ? mine.lon : null};
}

function statusCell(b) { return `<span class="status-${b.status}">${esc(b.status)}</span> <small>${esc(b.reason)}</small>`; }

function countdown(r) {
  const now = Date.now() / 1000;
  if (r.phase === "bidding") return `bids close in ${Math.max(0, Math.round(r.deadline - now))} s`;
  if (r.phase === "closing") return "bids closed; bids admitted in time are reaching the chain";
  if (r.phase === "reveal") return `offers open; the RSU settles in ${Math.max(0, Math.round(r.reveal_deadline - now))} s`;
  return r.phase;
}

async function renderBuyer() {
  const v = await renderAccount();
  const rounds = await api("GET", "/api/rounds");
  const mine = rounds.filter((r) => r.requests.some((q) => q.address.toLowerCase() === me.toLowerCase()));
  $("my-rounds").innerHTML = mine.map((r) => {
    const q = r.requests.find((x) => x.address.toLowerCase() === me.toLowerCase());
    const offers = r.offers.filter((o) => o.buyer.toLowerCase() === me.toLowerCase());
    const canAccept = r.phase === "reveal" && r.requests.length === 1;
    const rows = offers.map((o) => {
      return `<tr><td><code>${esc(short(o.seller))}</code></td><td>${num(o.T, 4)}</td><td>${num(o.kwh)}</td>
        <td>${o.distance_km === null ? "" : num(o.distance_km, 2)}</td>
        <td>${canAccept ? `<button class="accept" data-round="${r.round_id}" data-seller="${o.seller_index}" data-kwh="${Math.max(q.b_min, Math.min(o.kwh, q.b_max)).toFixed(3)}">Accept</button>` : ""}</td></tr>`;
    }).join("");
    const trades = r.trades.map((t) => `<li>${esc(short(t.seller))}: ${num(t.kwh)} kWh at ${num(t.price, 4)}, paid ${num(t.payment, 4)} (block ${t.block})</li>`).join("");
    return `<div class="round" data-round="${r.round_id}"><h3>Round ${r.round_id}: ${esc(countdown(r))}</h3>
      <p>Request: ${statusCell(q)} &middot; replies ${r.replies.length}</p>
      ${rows ? `<table class="offers"><tr><th>seller</th><th>price T</th><th>optimal kWh</th><th>km</th><th></th></tr>${rows}</table>` : ""}
      ${trades ? `<ul class="trades">${trades}</ul>` : ""}</div>`;
  }).join("") || "<p>No requests yet.</p>";
  for (const b of document.querySelectorAll("button.accept")) {
    b.onclick = () => api("POST", `/api/rounds/${b.dataset.round}/accept/${me}`,
      {password: password(), seller_index: Number(b.dataset.seller), kwh: Number(b.dataset.kwh)}).then(ok, fail);
  }
  return v;
}

function km(a, b) {
  const r = Math.PI / 180, dLat = (b.lat - a.lat) * r, dLon = (b.lon - a.lon) * r;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * r) * Math.cos(b.lat * r) * Math.sin(dLon / 2) ** 2;
  return 2 * 6371.0088 * Math.asin(Math.sqrt(h));
}

async function renderSeller() {
  const v = await renderAccount();
  const rounds = await api("GET", "/api/rounds");
  const open = rounds.filter((r) => r.phase === "bidding" && !r.replies.some((p) => p.address.toLowerCase() === me.toLowerCase())
    && !r.requests.some((q) => q.address.toLowerCase() === me.toLowerCase()));
  const here = {lat: v.lat ?? 0, lon: v.lon ?? 0};
  const nearest = (r) => Math.min(...r.requests.map((q) => km(here, q)));
  open.sort((a, b) => nearest(a) - nearest(b));  // requests near me first
  const openHtml = open.map((r) => `<div class="round" data-round="${r.round_id}"><h3>Round ${r.round_id}: ${esc(countdown(r))}</h3>
    <p>${r.requests.map((q) => `${esc(short(q.address))}, ${num(km(here, q), 2)} km away, wants ${num(q.b_min)}-${num(q.b_max)} kWh, values in [${num(q.v_min)}, ${num(q.v_max)}]`).join("<br>")}</p>
    <form class="reply" data-round="${r.round_id}">
      <label>cost c <input name="c" type="number" step="any" value="0.55"></label>
      <label>c_min <input name="c_min" type="number" step="any" value="0.5"></label>
      <label>c_max <input name="c_max" type="number" step="any" value="0.8"></label>
      <label>energy s_t <input name="s_t" type="number" step="any" value="20"></label>
      <label>reserve s_r <input name="s_r" type="number" step="any" value="10"></label>
      <label>loss rho <input name="rho" type="number" step="any" value="0.05"></label>
      <button type="submit">Reply</button></form></div>`).join("");
  if (!document.activeElement || !document.activeElement.closest || !document.activeElement.closest("form.reply")) {
    $("open-rounds").innerHTML = openHtml || "<p>No open requests.</p>";
  }
  for (const f of document.querySelectorAll("form.reply")) {
    f.onsubmit = async (e) => {
      e.preventDefault();
      try {
        const d = await myDetails();
        const body = {...formData(f), password: password(), lat: d?.lat ?? 0, lon: d?.lon ?? 0};
        await api("POST", `/api/rounds/${f.dataset.round}/replies/${me}`, body);
        ok();
        render();
      } catch (err) { fail(err); }
    };
  }
  const mine = rounds.filter((r) => r.replies.some((p) => p.address.toLowerCase() === me.toLowerCase()));
  $("my-rounds").innerHTML = mine.map((r) => {
    const p = r.replies.find((x) => x.address.toLowerCase() === me.toLowerCase());
    const sold = r.trades.filter((t) => t.seller.toLowerCase() === me.toLowerCase())
      .map((t) => `<li>${esc(short(t.buyer))}: ${num(t.kwh)} kWh at ${num(t.price, 4)}</li>`).join("");
    return `<div class="round" data-round="${r.round_id}"><h3>Round ${r.round_id}: ${esc(countdown(r))}</h3>
      <p>Reply: ${statusCell(p)}</p>${sold ? `<ul class="trades">${sold}</ul>` : ""}</div>`;
  }).join("") || "<p>No replies yet.</p>";
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

async function renderHome() {
  const vehicles = await api("GET", "/api/vehicles");
  $("vehicles").innerHTML = `<tr><th>account</th><th>plate hash</th><th></th></tr>` + vehicles.map((x) =>
    `<tr><td><code>${esc(x.address)}</code></td><td><code>${esc(short(x.plate_hash))}</code></td>
     <td><a href="/buyer?address=${x.address}">buyer page</a> <a href="/seller?address=${x.address}">seller page</a></td></tr>`).join("");
}

const renderers = {home: renderHome, buyer: renderBuyer, seller: renderSeller, rsu: renderRsu};
let busy = false;
async function render() {
  if (busy) return;
  busy = true;
  try { await renderers[page](); } catch (err) { fail(err); } finally { busy = false; }
}

function wire() {
  const reg = $("register");
  if (reg) reg.onsubmit = (e) => {
    e.preventDefault();
    api("POST", "/api/vehicles", formData(reg)).then((v) => {
      ok();
      $("register-result").innerHTML = `Registered ${esc(v.name)}: <code class="new-address">${esc(v.address)}</code>
        <a href="/buyer?address=${v.address}">buyer page</a> <a href="/seller?address=${v.address}">seller page</a>`;
      render();
    }, fail);
  };
  const topup = $("topup");
  if (topup) topup.onsubmit = (e) => {
    e.preventDefault();
    api("POST", `/api/vehicles/${me}/topup`, {...formData(topup), password: password()}).then((d) => { mine = d; ok(); render(); }, fail);
  };
  const req = $("request");
  if (req) req.onsubmit = async (e) => {
    e.preventDefault();
    try {
      const d = await myDetails();
      const r = await api("POST", `/api/vehicles/${me}/requests`, {...formData(req), password: password(), lat: d?.lat ?? 0, lon: d?.lon ?? 0});
      ok();
      $("request-result").textContent = `Request posted in round ${r.round_id}`;
      render();
    } catch (err) { fail(err); }
  };
  const pw = $("password");
  if (pw) pw.onchange = () => { mine = null; };
  const unlock = $("unlock");
  if (unlock) unlock.onclick = () => { mine = null; myDetails().then(() => { ok(); render(); }, fail); };
  const collect = $("collect");
  if (collect) collect.onsubmit = (e) => {
    e.preventDefault();
    api("POST", `/api/vehicles/${me}/collect`, {password: password()}).then(() => { ok(); render(); }, fail);
  };
}

wire();
render();
const events = new EventSource("/api/events");
events.onopen = () => $("live").classList.add("on");
events.onerror = () => $("live").classList.remove("on");
events.onmessage = () => render();
setInterval(render, 2000); // countdowns

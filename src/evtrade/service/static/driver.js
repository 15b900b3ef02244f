// evtrade web app: the drivers' pages (home, buyer, seller). Loaded after app.js (shared helpers).
"use strict";

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

async function renderHome() {
  const vehicles = await api("GET", "/api/vehicles");
  $("vehicles").innerHTML = `<tr><th>account</th><th>plate hash</th><th></th></tr>` + vehicles.map((x) =>
    `<tr><td><code>${esc(x.address)}</code></td><td><code>${esc(short(x.plate_hash))}</code></td>
     <td><a href="/buyer?address=${x.address}">buyer page</a> <a href="/seller?address=${x.address}">seller page</a></td></tr>`).join("");
}

wirers.push(() => {
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
});

renderers.home = renderHome;
renderers.buyer = renderBuyer;
renderers.seller = renderSeller;

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

// Money the vehicle has in flight, from the rounds it bid in and its history: escrow locked in
// running rounds, refunds waiting in finished ones (not yet collected).
let claimed = new Set();  // rounds whose refund this vehicle collected (from its history)
function moneyInRounds(rounds, history) {
  claimed = new Set(history.filter((h) => h.kind === "refund" && h.status === "confirmed").map((h) => h.round_id));
  let locked = 0, waiting = 0;
  for (const r of rounds) {
    for (const q of r.requests) {
      if (q.address.toLowerCase() !== me.toLowerCase()) continue;
      if (q.refund === null) locked += q.escrow - q.paid;
      else if (!claimed.has(r.round_id)) waiting += q.refund;
    }
  }
  return {locked, waiting};
}

const TX_STATUS = {pending: "pending: waiting for its block", confirmed: "confirmed", failed: "failed"};

async function renderAccount(rounds) {
  if (!me || !$("account")) return null;
  const v = await api("GET", `/api/vehicles/${me}`);
  const history = await api("GET", `/api/vehicles/${me}/history`);
  const money = moneyInRounds(rounds || [], history);
  const own = mine ? `${esc(mine.name)} <small>${esc(mine.plate)}</small>` : `Vehicle <small>${esc(short(v.address))}</small>`;
  $("account").innerHTML = `<h2>${own}</h2>
    <p>Account <code id="address">${esc(v.address)}</code> &middot; plate hash <code>${esc(short(v.plate_hash))}</code></p>
    <p>Balance <b id="balance">${num(v.balance, 4)}</b> tokens &middot;
    locked in escrow <b id="escrow-locked">${num(money.locked, 4)}</b> tokens &middot;
    refund waiting <b id="refund-waiting">${num(money.waiting, 4)}</b> tokens &middot;
    credit to withdraw <b id="credit">${num(v.credit, 4)}</b> tokens &middot;
    energy bought <b id="bought">${num(v.energy_bought)}</b> kWh, sold <b id="sold">${num(v.energy_sold)}</b> kWh</p>`;
  renderHistory(history);
  return {...v, lat: mine ? mine.lat : null, lon: mine ? mine.lon : null};
}

// The vehicle's transactions, newest first, with their status on chain (like a wallet).
function renderHistory(history) {
  let table = $("history");
  if (!table) {
    const section = document.createElement("section");
    section.setAttribute("aria-labelledby", "history-title");
    section.innerHTML = `<h2 id="history-title">Transactions</h2>
      <p class="note">What the service sent to the chain for this vehicle; tokens into (+) or out of (&minus;) the wallet.</p>
      <table id="history"></table>`;
    (document.querySelector("main") || document.body).appendChild(section);
    table = $("history");
  }
  const tokens = (x) => (x === null ? "" : `${x > 0 ? "+" : ""}${num(x, 4)} tokens`);
  table.innerHTML = `<tr><th scope="col">when</th><th scope="col">what</th><th scope="col">tokens</th><th scope="col">status</th><th scope="col">block</th><th scope="col">transaction</th></tr>` +
    (history.map((h) => `<tr class="tx tx-${esc(h.status)}"><td>${new Date(h.time * 1000).toLocaleTimeString()}</td><td>${esc(h.what)}</td>
      <td>${tokens(h.tokens)}</td><td><span class="status-${esc(h.status)}">${esc(TX_STATUS[h.status] || h.status)}</span>${h.detail ? ` <small>${esc(h.detail)}</small>` : ""}</td>
      <td>${h.block ?? ""}</td><td>${h.tx ? `<code title="${esc(h.tx)}">${esc(short(h.tx))}</code>` : ""}</td></tr>`).join("") ||
      `<tr><td colspan="6">No transactions yet.</td></tr>`);
}

function statusCell(b) { return `<b class="status status-${esc(b.status)}">${esc(b.status)}</b> <span class="reason">${esc(b.reason)}</span>`; }

// What a request has locked and what it gets back, in tokens.
function requestMoney(q, roundId) {
  const parts = [`${num(q.escrow, 4)} tokens locked in escrow (the most you would pay &times; the most energy)`];
  if (q.kwh > 0) parts.push(`bought ${num(q.kwh)} kWh for ${num(q.paid, 4)} tokens`);
  if (q.refund !== null) parts.push(claimed.has(roundId) ? `refund ${num(q.refund, 4)} tokens: collected` : `refund ${num(q.refund, 4)} tokens waiting: collect it below`);
  return parts.join(" &middot; ");
}

// Offers the buyer chose among; the round's choice in flight shows "accepted" until the chain answers.
const choosing = new Map();

async function renderBuyer() {
  const rounds = await api("GET", "/api/rounds");
  const v = await renderAccount(rounds);
  const mineRounds = rounds.filter((r) => r.requests.some((q) => q.address.toLowerCase() === me.toLowerCase()));
  $("my-rounds").innerHTML = mineRounds.map((r) => {
    const q = r.requests.find((x) => x.address.toLowerCase() === me.toLowerCase());
    const offers = r.offers.filter((o) => o.buyer.toLowerCase() === me.toLowerCase());
    const inFlight = choosing.get(r.round_id);
    const shown = inFlight !== undefined && r.phase !== "settled"
      ? {status: "accepted", reason: `you chose ${short(inFlight)}'s offer: settling on chain`} : q;
    const canAccept = r.phase === "reveal" && r.requests.length === 1 && inFlight === undefined;
    const rows = offers.map((o) => {
      const take = o.take_kwh === null ? "cannot cover your minimum alone" : `${num(o.take_kwh)} kWh for ${num(o.total, 4)} tokens`;
      const button = canAccept && o.take_kwh !== null
        ? `<button class="accept" data-round="${r.round_id}" data-seller="${o.seller_index}" data-address="${esc(o.seller)}"
            aria-label="Accept: buy ${num(o.take_kwh)} kWh for ${num(o.total, 4)} tokens from seller ${esc(short(o.seller))}">Accept: buy ${num(o.take_kwh)} kWh for ${num(o.total, 4)} tokens</button>` : "";
      return `<tr><td><code>${esc(short(o.seller))}</code></td><td>${num(o.T, 4)} tokens/kWh</td><td>${take}</td>
        <td>${o.distance_km === null ? "" : `${num(o.distance_km, 2)} km`}</td><td>${button}</td></tr>`;
    }).join("");
    const trades = r.trades.map((t) => `<li>${esc(short(t.seller))}: ${num(t.kwh)} kWh at ${num(t.price, 4)} tokens/kWh, paid ${num(t.payment, 4)} tokens (block ${t.block})</li>`).join("");
    return `<div class="round" data-round="${r.round_id}"><h3>Round ${r.round_id}: ${esc(countdown(r))}</h3>
      <p class="request-status">Request: ${statusCell(shown)}</p>
      <p class="request-money">${requestMoney(q, r.round_id)} &middot; replies ${r.replies.length}</p>
      ${rows ? `<table class="offers"><caption>Offers: accepting one buys that seller's spare energy, up to the most you need</caption>
        <tr><th scope="col">seller</th><th scope="col">price T</th><th scope="col">you get and pay</th><th scope="col">distance</th><th scope="col"></th></tr>${rows}</table>` : ""}
      ${trades ? `<ul class="trades">${trades}</ul>` : ""}</div>`;
  }).join("") || "<p>No requests yet.</p>";
  for (const b of document.querySelectorAll("button.accept")) {
    b.onclick = async () => {
      const rid = Number(b.dataset.round);
      choosing.set(rid, b.dataset.address);
      render();
      try {
        const r = await api("POST", `/api/rounds/${rid}/accept/${me}`, {password: password(), seller_index: Number(b.dataset.seller)});
        const q = r.requests.find((x) => x.address.toLowerCase() === me.toLowerCase());
        ok();
        $("request-result").textContent = `Offer accepted in round ${rid}: ${q ? q.reason : "settled"}.` +
          (q && q.refund !== null ? ` Refund waiting: ${num(q.refund, 4)} tokens (collect it below).` : "");
      } catch (err) { fail(err); } finally { choosing.delete(rid); render(); }
    };
  }
  return v;
}

function km(a, b) {
  const r = Math.PI / 180, dLat = (b.lat - a.lat) * r, dLon = (b.lon - a.lon) * r;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * r) * Math.cos(b.lat * r) * Math.sin(dLon / 2) ** 2;
  return 2 * 6371.0088 * Math.asin(Math.sqrt(h));
}

// Rounds this seller replied to from this page: shown as replied at once, before the index has it.
const repliedRounds = new Set();

async function renderSeller() {
  const rounds = await api("GET", "/api/rounds");
  const v = await renderAccount(rounds);
  const isMe = (a) => a.toLowerCase() === me.toLowerCase();
  const replied = (r) => repliedRounds.has(r.round_id) || r.replies.some((p) => isMe(p.address));
  const open = rounds.filter((r) => r.phase === "bidding" && !r.requests.some((q) => isMe(q.address)));
  const here = {lat: v.lat ?? 0, lon: v.lon ?? 0};
  const nearest = (r) => Math.min(...r.requests.map((q) => km(here, q)));
  open.sort((a, b) => nearest(a) - nearest(b));  // requests near me first
  const openHtml = open.map((r) => `<div class="round" data-round="${r.round_id}"><h3>Round ${r.round_id}: ${esc(countdown(r))}</h3>
    <p>${r.requests.map((q) => `${esc(short(q.address))}, ${num(km(here, q), 2)} km away, wants ${num(q.b_min)}-${num(q.b_max)} kWh, would pay ${num(q.v_min)}-${num(q.v_max)} tokens/kWh`).join("<br>")}</p>
    ${replied(r) ? `<p class="replied"><b class="status status-pending">replied</b> <span class="reason">your reply is sealed on chain: waiting for the bid window to close</span></p>`
      : `<form class="reply" data-round="${r.round_id}" novalidate>${replyFields(r.round_id)}
      <button type="submit">Reply</button></form>`}</div>`).join("");
  // Re-rendered on every change, except while the seller is typing in a reply form.
  const typing = document.activeElement && document.activeElement.tagName === "INPUT" && document.activeElement.closest("form.reply");
  if (!typing) $("open-rounds").innerHTML = openHtml || "<p>No open requests.</p>";
  for (const f of document.querySelectorAll("form.reply")) {
    f.onsubmit = async (e) => {
      e.preventDefault();
      try {
        const d = await myDetails();
        const body = {...formData(f), password: password(), lat: d?.lat ?? 0, lon: d?.lon ?? 0};
        const posted = await api("POST", `/api/rounds/${f.dataset.round}/replies/${me}`, body);
        repliedRounds.add(posted.round_id);
        if (document.activeElement) document.activeElement.blur();
        ok();
        render();
      } catch (err) { fail(err); }
    };
  }
  const mineRounds = rounds.filter((r) => r.replies.some((p) => isMe(p.address)));
  $("my-rounds").innerHTML = mineRounds.map((r) => {
    const p = r.replies.find((x) => isMe(x.address));
    const sold = r.trades.filter((t) => isMe(t.seller))
      .map((t) => `<li>${esc(short(t.buyer))}: ${num(t.kwh)} kWh at ${num(t.price, 4)} tokens/kWh, earned ${num(t.payment, 4)} tokens (block ${t.block})</li>`).join("");
    const money = p.kwh > 0 ? `<p class="reply-money">sold ${num(p.kwh)} kWh for ${num(p.earned, 4)} tokens: credited, withdraw it below</p>` : "";
    return `<div class="round" data-round="${r.round_id}"><h3>Round ${r.round_id}: ${esc(countdown(r))}</h3>
      <p class="reply-status">Reply: ${statusCell(p)}</p>${money}${sold ? `<ul class="trades">${sold}</ul>` : ""}</div>`;
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
  // Before posting, the page says what the request will lock: v_max x b_max tokens in escrow.
  const escrowOf = () => Number(req.elements.v_max.value) * Number(req.elements.b_max.value);
  if (req) {
    const note = document.createElement("p");
    note.id = "request-escrow";
    note.className = "escrow-note";
    note.setAttribute("aria-live", "polite");
    req.insertAdjacentElement("afterend", note);
    const say = () => {
      const x = escrowOf();
      note.textContent = Number.isFinite(x) && x > 0
        ? `Posting locks ${num(x, 4)} tokens in escrow (the most you would pay per kWh × the most energy); what you do not pay comes back as a refund.` : "";
    };
    req.addEventListener("input", say);
    say();
  }
  if (req) req.onsubmit = async (e) => {
    e.preventDefault();
    try {
      const d = await myDetails();
      const locked = escrowOf();
      const r = await api("POST", `/api/vehicles/${me}/requests`, {...formData(req), password: password(), lat: d?.lat ?? 0, lon: d?.lon ?? 0});
      ok();
      $("request-result").textContent = `Request posted in round ${r.round_id}: ${num(locked, 4)} tokens locked in escrow until the round settles.`;
      render();
    } catch (err) { fail(err); }
  };
  const pw = $("password");
  if (pw) pw.onchange = () => { mine = null; };
  const unlock = $("unlock");
  if (unlock) unlock.onclick = () => { mine = null; myDetails().then(() => { ok(); render(); }, fail); };
  const collect = $("collect");
  if (collect) {
    let said = $("collect-result");
    if (!said) {
      said = document.createElement("p");
      said.id = "collect-result";
      said.className = "result";
      said.setAttribute("role", "status");
      collect.insertAdjacentElement("afterend", said);
    }
    collect.onsubmit = (e) => {
      e.preventDefault();
      api("POST", `/api/vehicles/${me}/collect`, {password: password()}).then((got) => {
        ok();
        const total = got.refunded + got.withdrawn;
        said.textContent = total > 0
          ? `Received ${num(total, 4)} tokens: refunds ${num(got.refunded, 4)}, payments and deposits withdrawn ${num(got.withdrawn, 4)}. Balance now ${num(got.balance, 4)} tokens.`
          : `Nothing to collect right now. Balance ${num(got.balance, 4)} tokens.`;
        render();
      }, fail);
    };
  }
});

renderers.home = renderHome;
renderers.buyer = renderBuyer;
renderers.seller = renderSeller;

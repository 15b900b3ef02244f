// evtrade web app: one round's page (/rounds/{id}): its bids (values once the bid window has
// closed), offers with Theorem 1's prices, trades and the audit's verdict. Loaded after app.js.
"use strict";

(() => {
const roundId = Number(location.pathname.split("/").pop());
const at = (t) => (t === null || t === undefined ? "" : new Date(t * 1000).toLocaleTimeString());
const who = (a) => `<code title="${esc(a)}">${esc(short(a))}</code>`;
const status = (b) => `<span class="status-${esc(b.status)}">${esc(b.status)}</span> <small>${esc(b.reason)}</small>`;
// A wide table scrolls sideways in its own region (a phone), which the keyboard can reach.
const table = (label, head, rows, empty) => (rows.length
  ? `<div class="scroll" tabindex="0" role="region" aria-label="${label}"><table><tr>${head.map((h) => `<th>${h}</th>`).join("")}</tr>${rows.join("")}</table></div>`
  : `<p>${empty}</p>`);

function summary(r) {
  return `<h2>${esc(countdown(r))}</h2>
    <p>Bids until <b>${at(r.deadline)}</b> &middot; reveal until ${at(r.reveal_deadline)} &middot;
    settlement until ${at(r.settle_deadline)}</p>
    <p>Opened by the RSU ${r.rsu ? who(r.rsu) : ""} &middot; buyers' value floor v<sup>min</sup>
    ${num(r.v_floor, 4)} tokens/kWh &middot; sellers' cost ceiling c<sup>max</sup> ${num(r.c_ceiling, 4)} tokens/kWh</p>
    ${r.error ? `<p class="error">${esc(r.error.message)}</p>` : ""}`;
}

function bids(r) {
  const value = new Map((r.bids || []).map((b) => [`${b.side}:${b.index}`, b.value]));
  const shown = (side, index) => {
    if (r.bids === null) return "<i>sealed</i>";
    const v = value.get(`${side}:${index}`);
    return v === null || v === undefined ? "<i>not revealed</i>" : `${num(v, 4)}`;
  };
  const note = r.bids === null
    ? `<p class="note" id="sealed-note">Sealed: the values are shown once the bid window closes (${at(r.deadline)}).</p>` : "";
  const requests = r.requests.map((q) => `<tr><td>${q.index}</td><td>${who(q.address)}</td>
    <td>${num(q.b_min)} to ${num(q.b_max)}</td><td>${num(q.v_min, 4)} to ${num(q.v_max, 4)}</td>
    <td class="bid-value">${shown("request", q.index)}</td><td>${num(q.escrow, 4)}</td><td>${status(q)}</td></tr>`);
  const replies = r.replies.map((p) => `<tr><td>${p.index}</td><td>${who(p.address)}</td>
    <td>${num(p.s_t - p.s_r)}</td><td>${num(p.c_min, 4)} to ${num(p.c_max, 4)}</td>
    <td class="bid-value">${shown("reply", p.index)}</td><td>${num(p.rho, 4)}</td><td>${status(p)}</td></tr>`);
  return `${note}<h3>Buyers' requests</h3>${table("buyers' requests", ["#", "buyer", "energy, kWh", "value range, tokens/kWh",
    "value v, tokens/kWh", "escrow, tokens", "status"], requests, "No requests.")}
    <h3>Sellers' replies</h3>${table("sellers' replies", ["#", "seller", "spare energy, kWh", "cost range, tokens/kWh",
    "cost c, tokens/kWh", "loss rate", "status"], replies, "No replies.")}`;
}

function offers(r) {
  const rows = r.offers.map((o) => `<tr><td>${who(o.buyer)}</td><td>${who(o.seller)}</td><td>${num(o.P, 4)}</td>
    <td>${num(o.R, 4)}</td><td>${num(o.T, 4)}</td><td>${num(o.kwh)}</td><td>${o.distance_km === null ? "" : num(o.distance_km, 2)}</td></tr>`);
  return `<p class="note">Theorem 1: the buyer's price P*, the seller's price R* and the trading price T, all in
    tokens/kWh; the energy is the round's optimum (P1).</p>${table("offers", ["buyer", "seller", "P*", "R*", "T",
    "energy, kWh", "distance, km"], rows, "No offers yet: offers appear once the bids are revealed.")}`;
}

function trades(r) {
  const rows = r.trades.map((t) => `<tr><td>${who(t.buyer)}</td><td>${who(t.seller)}</td><td>${num(t.kwh)}</td>
    <td>${num(t.price, 4)}</td><td>${num(t.payment, 4)}</td><td>${t.block}</td><td>${who(t.tx)}</td></tr>`);
  return table("trades", ["buyer", "seller", "energy, kWh", "price, tokens/kWh", "paid, tokens", "block", "transaction"],
    rows, "No trades yet.");
}

function audit(r) {
  const a = r.audit;
  if (a === null) return "<p>The settlement is audited once the round is settled.</p>";
  // A buyer accepting one offer chooses the amount: the audit's comparison with the P1
  // optimum then differs by design; everything else must still hold.
  const chosen = (f) => r.settled_by === "buyer" && (f.kind === "volume" || f.kind === "missing");
  const wrong = a.findings.filter((f) => !chosen(f));
  const notes = a.findings.length - wrong.length;
  const how = r.settled_by === "buyer"
    ? ` The buyer accepted one offer and chose the amount, so the volume is not the P1 optimum the audit compares with${notes ? ` (${notes} note(s) below)` : ""}.`
    : " Every volume is the P1 optimum.";
  const verdict = wrong.length === 0
    ? `<p class="audit-ok" id="verdict"><span aria-hidden="true">&#10003;</span> Passed: every price is Theorem 1's.${how}</p>`
    : `<p class="audit-failed" id="verdict"><span aria-hidden="true">&#10007;</span> Failed: ${wrong.length} finding(s).</p>`;
  const findings = a.findings.map((f) => `<li><b>${esc(f.kind)}</b>${chosen(f) ? " <small>(the buyer's choice)</small>" : ""}
    ${f.buyer ? who(f.buyer) : ""} ${f.seller ? who(f.seller) : ""}: ${esc(f.message)}</li>`).join("");
  return `${verdict}<p>Settled by ${r.settled_by === "buyer" ? "the buyer accepting an offer" : "the RSU"}; ${a.trades} trade(s);
    revealed: ${a.revealed_buyers} buyer(s), ${a.revealed_sellers} seller(s); largest price gap
    ${a.max_price_error.toExponential(2)} tokens/kWh; largest volume gap ${a.max_volume_gap_kwh.toExponential(2)} kWh.</p>
    ${findings ? `<ul>${findings}</ul>` : ""}`;
}

async function renderRound() {
  const r = await api("GET", `/api/rounds/${roundId}`);
  document.querySelector("h1").textContent = `Round ${r.round_id}`;
  document.title = `evtrade: round ${r.round_id}`;
  $("round-summary").innerHTML = summary(r);
  $("round-bids").innerHTML = bids(r);
  $("round-offers").innerHTML = offers(r);
  $("round-trades").innerHTML = trades(r);
  $("round-audit").innerHTML = audit(r);
}

renderers.round = renderRound;
})();

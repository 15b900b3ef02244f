// The driver's DSM page (/plan): plan a charge, commit it on chain, watch the day's prices, see
// the bill. Uses app.js's helpers (api, fail, ok, formData, renderers, wirers).
"use strict";

const hourOf = (unix) => new Date(unix * 1000).toISOString().slice(11, 16);
const dateOf = (unix) => new Date(unix * 1000).toISOString().slice(0, 10);
const SOURCE_WORDS = {pv: "solar panel (PV)", v2g: "another car (V2G)", grid: "grid", none: "nothing"};
const STATUS_WORDS = {
  "not posted": "not posted yet: the first commitment posts it",
  open: "taking commitments until it starts",
  running: "running: the commitments are fixed",
  over: "over: settle it to compute the bills",
  settled: "settled on chain",
};
let planInputs = null; // the inputs of the plan shown (the commitment re-plans with them)
let chartKey = "";

function planAddress() {
  const field = $("commit-address");
  const typed = field ? field.value.trim() : "";
  return /^0x[0-9a-fA-F]{40}$/.test(typed) ? typed : me;
}

function renderPlan(plan) {
  const used = plan.slots.filter((s) => s.energy_kwh > 0);
  const from = plan.source === "pv" ? `the solar panel ${esc(plan.supplier)} (${num(plan.distance_km, 2)} km away)`
    : plan.source === "grid" ? "the grid, in the hours the dynamic price makes cheapest" : esc(SOURCE_WORDS[plan.source]);
  let summary = plan.source === "none"
    ? "Your battery is already at the charge you want: nothing to plan."
    : `Charge ${num(plan.energy_kwh)} kWh from ${from}. Expected bill: <strong id="expected-bill">${num(plan.expected_bill, 4)}</strong> tokens`
      + ` (day of ${dateOf(plan.day_start)}, hours in UTC).`;
  if (plan.unmet_kwh > 1e-9) summary += ` Your window holds only this much at this power: ${num(plan.unmet_kwh)} kWh short of the target.`;
  $("plan-summary").innerHTML = summary;
  $("plan-table").innerHTML = used.length ? `<thead><tr><th scope="col">Hour</th><th scope="col">Energy (kWh)</th>
    <th scope="col">Source</th><th scope="col">Price (tokens/kWh)</th><th scope="col">Cost (tokens)</th></tr></thead><tbody>`
    + used.map((s) => `<tr><td>${hourOf(s.start)}</td><td>${num(s.energy_kwh)}</td><td>${esc(SOURCE_WORDS[s.source])}</td>
      <td>${num(s.price, 4)}</td><td>${num(s.cost, 4)}</td></tr>`).join("")
    + `</tbody><tfoot><tr><th scope="row" colspan="4">Expected bill</th><td>${num(plan.expected_bill, 4)}</td></tr></tfoot>` : "";
}

// uPlot when it is vendored (make vendor), else a plain SVG of the same lines.
function drawChart(day) {
  const el = $("day-chart");
  const x = day.slots.map((s) => s.slot);
  const lines = [["base price", day.slots.map((s) => s.base_price), "#888"],
    ["dynamic price", day.slots.map((s) => s.price), "#c0392b"],
    ["PV price", day.slots.map((s) => s.pv_price), "#e6a700"]];
  el.innerHTML = "";
  if (window.uPlot) {
    const width = Math.max(300, Math.min(900, el.clientWidth || 700));
    new window.uPlot({width, height: 260, scales: {x: {time: false}},
      axes: [{label: "hour of the day (UTC)"}, {label: "tokens per kWh"}],
      series: [{label: "hour"}].concat(lines.map(([label, , stroke]) => ({label, stroke, width: 2})))},
    [x].concat(lines.map((l) => l[1])), el);
    return;
  }
  const all = lines.flatMap((l) => l[1]);
  const lo = Math.min(...all), hi = Math.max(...all), w = 700, h = 240, pad = 40;
  const px = (i) => pad + (i * (w - 2 * pad)) / Math.max(1, x.length - 1);
  const py = (v) => h - pad - ((v - lo) * (h - 2 * pad)) / Math.max(1e-9, hi - lo);
  const paths = lines.map(([label, ys, stroke]) => `<polyline fill="none" stroke="${stroke}" stroke-width="2"
    points="${ys.map((v, i) => `${px(i).toFixed(1)},${py(v).toFixed(1)}`).join(" ")}"><title>${label}</title></polyline>`).join("");
  const legend = lines.map(([label, , stroke], k) => `<text x="${pad + k * 150}" y="16" fill="${stroke}">${label}</text>`).join("");
  el.innerHTML = `<svg viewBox="0 0 ${w} ${h}" width="100%" role="presentation">${paths}${legend}
    <text x="${pad}" y="${h - 8}">hour 0</text><text x="${w - pad - 50}" y="${h - 8}">hour ${x.length - 1}</text>
    <text x="2" y="${pad}">${num(hi, 3)}</text><text x="2" y="${h - pad}">${num(lo, 3)}</text></svg>`;
}

function renderDay(day) {
  $("day-summary").textContent = `Day ${day.day_id === null ? "(next)" : day.day_id} of ${dateOf(day.start)}, `
    + `${(day.end - day.start) / 3600} h from ${hourOf(day.start)} UTC: ${STATUS_WORDS[day.status]}. `
    + `${day.commitments} commitment(s), ${num(day.escrow, 4)} tokens in escrow. `
    + `The dynamic price is the base price + ${day.mu} x (committed load - forecast).`;
  const key = JSON.stringify(day.slots);
  if (key !== chartKey) {
    chartKey = key;
    drawChart(day);
    $("day-table").innerHTML = `<thead><tr><th scope="col">Hour</th><th scope="col">Base price</th>
      <th scope="col">Forecast load (kWh)</th><th scope="col">Committed load (kWh)</th><th scope="col">Dynamic price</th>
      <th scope="col">PV price</th></tr></thead><tbody>`
      + day.slots.map((s) => `<tr><td>${hourOf(s.start)}</td><td>${num(s.base_price, 4)}</td><td>${num(s.forecast, 2)}</td>
        <td>${num(s.load, 3)}</td><td>${num(s.price, 4)}</td><td>${num(s.pv_price, 4)}</td></tr>`).join("") + "</tbody>";
  }
  $("settle").hidden = day.status !== "over";
}

function renderBill(view) {
  const c = view.commitment;
  $("withdraw").hidden = !(view.credit > 0);
  if (!c) { $("bill").innerHTML = '<p class="note">No commitment yet for this vehicle.</p>'; return; }
  const rows = [["Day", `${c.day_id} (${dateOf(c.day_start)}), ${STATUS_WORDS[c.status]}`],
    ["Plugged in", `${c.arrival}:00 to ${c.departure}:00, at most ${num(c.power_kw, 2)} kW`],
    ["Source", c.source === "pv" ? `solar panel ${short(c.supplier)}` : "grid"],
    ["Energy", `${num(c.energy_kwh.reduce((a, b) => a + b, 0))} kWh`],
    ["Escrowed", `${num(c.escrow, 4)} tokens`],
    ["Expected bill at the load committed now", `${num(c.expected_bill, 4)} tokens`]];
  if (c.settled) {
    rows.push(["Bill settled on chain", `<strong id="settled-bill">${num(c.bill, 4)}</strong> tokens`
      + ` (grid ${num(c.grid_bill, 4)}, PV ${num(c.supply_bill, 4)})`], ["Refund", `${num(c.refund, 4)} tokens`]);
  }
  rows.push(["Owed to you now", `${num(view.credit, 4)} tokens`]);
  $("bill").innerHTML = `<table tabindex="0" aria-label="your commitment and bill"><tbody>${rows.map(([k, v]) =>
    `<tr><th scope="row">${k}</th><td>${v}</td></tr>`).join("")}</tbody></table>`;
  if (c.status === "over") $("settle").hidden = false;
}

let placed = false; // the form's place starts where the day is, until the driver plans
renderers.plan = async () => {
  const day = await api("GET", "/api/dsm/day");
  if (!placed && !planInputs && $("plan-lat")) {
    placed = true;
    $("plan-lat").value = day.lat.toFixed(6);
    $("plan-lon").value = day.lon.toFixed(6);
  }
  renderDay(day);
  const address = planAddress();
  if (address) renderBill(await api("GET", `/api/vehicles/${address}/dsm`));
};

wirers.push(() => {
  if (page !== "plan") return;
  if (me && $("commit-address")) $("commit-address").value = me;
  $("plan").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const inputs = formData(e.target);
      const plan = await api("POST", "/api/dsm/plan", inputs);
      planInputs = inputs;
      ok();
      renderPlan(plan);
    } catch (err) { fail(err); }
  });
  $("commit").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      if (!planInputs) { $("error").textContent = "Plan your charge first (the form above)."; return; }
      const who = formData(e.target);
      const view = await api("POST", "/api/dsm/commit", {...planInputs, ...who});
      ok();
      $("commit-result").textContent = `Committed to day ${view.commitment.day_id}: ${num(view.commitment.escrow, 4)} tokens in escrow.`;
      renderBill(view);
      render();
    } catch (err) { fail(err); }
  });
  $("settle").addEventListener("click", async () => {
    try { await api("POST", "/api/dsm/settle"); ok(); render(); } catch (err) { fail(err); }
  });
  $("withdraw").addEventListener("click", async () => {
    try {
      const out = await api("POST", `/api/vehicles/${planAddress()}/dsm/withdraw`, {password: $("commit-password").value});
      ok();
      $("commit-result").textContent = `${num(out.tokens, 4)} tokens back in your wallet.`;
      render();
    } catch (err) { fail(err); }
  });
});

// evtrade web app: the RSU dashboard (rounds, price history, map, recent blocks). Loaded after
// app.js (shared helpers) and the vendored uPlot and Leaflet (`make vendor`); without them it
// falls back to tables and says so.
"use strict";

(() => {
const clockTime = (t) => (t === null || t === undefined ? "" : new Date(t * 1000).toLocaleTimeString());
const roundLink = (id) => `<a href="/rounds/${Number(id)}">Round ${Number(id)}</a>`;
const account = (a) => (a ? `<code title="${esc(a)}">${esc(short(a))}</code>` : "");

function renderRounds(rounds) {
  const failure = (e) => e ? `<span class="error">${esc(e.message)}</span>
    <small>failing since ${clockTime(e.since)}, ${e.attempts} attempt(s), next at ${clockTime(e.retry_at)}</small>` : "";
  const rows = rounds.slice().reverse().map((r) => `<tr><td>${roundLink(r.round_id)}</td><td>${esc(countdown(r))}</td>
    <td>${r.requests.length}</td><td>${r.replies.length}</td><td>${r.trades.length}</td>
    <td>${num(r.trades.reduce((a, t) => a + t.kwh, 0))}</td><td class="round-error">${failure(r.error)}</td></tr>`).join("");
  $("rounds").innerHTML = rounds.length ? `<div class="scroll" tabindex="0" role="region" aria-label="rounds"><table><tr><th>round</th><th>phase</th><th>requests</th>
    <th>replies</th><th>trades</th><th>energy, kWh</th><th>error</th></tr>${rows}</table></div>` : "<p>No rounds yet.</p>";
}

// -- price history: uPlot, time on x, tokens/kWh on y -----------------------------------------------

let chart = null;
function renderPrices(points) {
  const box = $("prices");
  const note = $("prices-note");
  note.textContent = points.length ? `${points.length} trade(s); each point is one trade's price T.`
    : "No trades yet: each settled trade adds a point.";
  if (typeof uPlot === "undefined") {
    note.textContent += " The chart library is not installed (run `make vendor`): prices as a table.";
    box.innerHTML = `<table><tr><th>time</th><th>round</th><th>price, tokens/kWh</th><th>kWh</th></tr>${points.map((p) =>
      `<tr><td>${clockTime(p.time)}</td><td>${roundLink(p.round_id)}</td><td>${num(p.price, 4)}</td><td>${num(p.kwh)}</td></tr>`).join("")}</table>`;
    return;
  }
  const timed = points.filter((p) => p.time !== null);
  const data = [timed.map((p) => p.time), timed.map((p) => p.price)];
  const width = Math.max(260, box.clientWidth || 420);
  if (chart === null) {
    chart = new uPlot({
      width, height: 240,
      // A few trades close together (or one) still get a readable span: a minute at least.
      scales: {
        // (from the data itself: uPlot widens a single point's span to a thousand days)
        x: {time: true, range: (u) => {
          const xs = u.data[0];
          if (!xs.length) { const now = Date.now() / 1000; return [now - 3600, now]; }
          const [min, max] = [xs[0], xs[xs.length - 1]];
          const pad = Math.max(60, (max - min) * 0.05);
          return [min - pad, max + pad];
        }},
        y: {range: (u, min, max) => [0, max === null ? 1 : max * 1.15]},
      },
      series: [
        {label: "time", value: (u, v) => (v === null ? "" : new Date(v * 1000).toLocaleString())},
        {label: "price T", stroke: "#1f5fbf", width: 1.5, points: {show: true, size: 7, fill: "#1f5fbf"},
         value: (u, v) => (v === null ? "" : `${v.toFixed(4)} tokens/kWh`)},
      ],
      axes: [{label: "time (local)"}, {label: "price, tokens/kWh", size: 64}],
    }, data, box);
    window.addEventListener("resize", () => chart.setSize({width: Math.max(260, box.clientWidth), height: 240}));
  } else {
    chart.setData(data);
  }
}

// -- map: Leaflet, OpenStreetMap tiles with an offline grid ---------------------------------------

const COLOURS = {rsu: "#b42318", request: "#1f5fbf", reply: "#2a9d4b"};
const LEGEND = [["rsu", "RSU"], ["request", "buyer (request)"], ["reply", "seller (reply)"]];
let map = null;
let markers = null;
let tiles = null;
let offline = false;
let framed = "";

// A plain coordinate grid, drawn in the browser: the basemap when no tile can be loaded.
function gridLayer() {
  const Grid = L.GridLayer.extend({
    createTile(coords) {
      const tile = document.createElement("canvas");
      const size = this.getTileSize();
      tile.width = size.x;
      tile.height = size.y;
      const ctx = tile.getContext("2d");
      ctx.fillStyle = "#f4f7fa";
      ctx.fillRect(0, 0, size.x, size.y);
      ctx.strokeStyle = "#c9d3de";
      ctx.strokeRect(0.5, 0.5, size.x - 1, size.y - 1);
      const nw = map.unproject(coords.scaleBy(size), coords.z);
      ctx.fillStyle = "#6b7684";
      ctx.font = "10px system-ui, sans-serif";
      ctx.fillText(`${nw.lat.toFixed(3)}°, ${nw.lng.toFixed(3)}°`, 4, 12);
      return tile;
    },
  });
  return new Grid();
}

function goOffline() {
  if (offline) return;
  offline = true;
  if (tiles) map.removeLayer(tiles);
  gridLayer().addTo(map);
  $("map-note").textContent = "Map tiles from OpenStreetMap could not be loaded (offline?): a coordinate grid is shown instead.";
}

function makeMap() {
  map = L.map("map", {scrollWheelZoom: false});
  L.control.scale({metric: true, imperial: false}).addTo(map);
  const legend = L.control({position: "bottomright"});
  legend.onAdd = () => {
    const div = L.DomUtil.create("div", "legend");
    div.innerHTML = LEGEND.map(([k, label]) => `<span><i style="background:${COLOURS[k]}"></i>${label}</span>`).join("");
    return div;
  };
  legend.addTo(map);
  markers = L.layerGroup().addTo(map);
  if (navigator.onLine === false) {
    goOffline();
  } else {
    tiles = L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png", {
      maxZoom: 19, attribution: "&copy; OpenStreetMap contributors",
    });
    tiles.on("tileerror", goOffline);
    tiles.addTo(map);
  }
}

function mapPoints(rounds, chain) {
  // Where bids were placed (the chain records each bid's location), latest bid per account.
  const placed = new Map();
  for (const r of rounds) {
    for (const q of r.requests) placed.set(q.address, {kind: "request", address: q.address, lat: q.lat, lon: q.lon, round: r.round_id});
    for (const p of r.replies) placed.set(p.address, {kind: "reply", address: p.address, lat: p.lat, lon: p.lon, round: r.round_id});
  }
  return [{kind: "rsu", address: chain.rsu.address, lat: chain.rsu.lat, lon: chain.rsu.lon, round: null}, ...placed.values()];
}

function renderMap(points) {
  if (typeof L === "undefined") {
    $("map-note").textContent = "The map library is not installed (run `make vendor`): places as a table.";
    $("map").innerHTML = `<table><tr><th>who</th><th>latitude</th><th>longitude</th></tr>${points.map((p) =>
      `<tr><td>${p.kind === "rsu" ? "RSU" : `${esc(p.kind === "request" ? "buyer" : "seller")} ${account(p.address)}`}</td>
      <td>${num(p.lat, 5)}</td><td>${num(p.lon, 5)}</td></tr>`).join("")}</table>`;
    return;
  }
  if (map === null) makeMap();
  markers.clearLayers();
  for (const p of points) {
    const who = p.kind === "rsu" ? "RSU" : `${p.kind === "request" ? "buyer" : "seller"} ${short(p.address)}`;
    const where = `${p.lat.toFixed(5)}°, ${p.lon.toFixed(5)}°`;
    L.circleMarker([p.lat, p.lon], {
      radius: p.kind === "rsu" ? 9 : 6, color: "#fff", weight: 2, fillColor: COLOURS[p.kind], fillOpacity: 0.95,
    }).bindTooltip(`${esc(who)}<br>${where}${p.round === null ? "" : `<br>last bid in round ${p.round}`}`)
      .addTo(markers);
  }
  // Re-frame only when the places change, so a reader's zoom and pan stay put between updates.
  const key = points.map((p) => `${p.lat},${p.lon}`).join(";");
  if (key !== framed) {
    framed = key;
    if (points.length === 1) map.setView([points[0].lat, points[0].lon], 14);
    // The legend sits bottom right: keep the places clear of it.
    else map.fitBounds(L.latLngBounds(points.map((p) => [p.lat, p.lon])), {paddingTopLeft: [40, 30], paddingBottomRight: [150, 40], maxZoom: 15});
  }
}

// -- recent blocks: each transaction decoded ------------------------------------------------------

function amount(t) {
  const parts = [];
  if (t.kwh !== null) parts.push(`${num(t.kwh)} kWh`);
  if (t.tokens !== null) parts.push(`${num(t.tokens, 4)} tokens`);
  return parts.join(", ");
}

function renderBlocks(blocks) {
  const rows = blocks.flatMap((b) => {
    const head = `<td>${b.number}</td><td>${clockTime(b.timestamp)}</td>`;
    if (!b.decoded.length) return [`<tr>${head}<td colspan="6" class="note">no transactions</td></tr>`];
    return b.decoded.map((t) => `<tr>${head}<td><b>${esc(t.what)}</b>${t.round_id === null ? "" : ` <small>${roundLink(t.round_id)}</small>`}</td>
      <td>${account(t.who)}</td><td>${amount(t)}</td><td>${esc(t.summary)}</td>
      <td class="tx-${esc(t.status)}">${esc(t.status)}</td><td>${account(t.hash)}</td></tr>`);
  });
  $("blocks").innerHTML = `<tr><th>block</th><th>time</th><th>what</th><th>who</th><th>amount</th><th>details</th>
    <th>status</th><th>transaction</th></tr>${rows.join("")}`;
}

function renderConsortium(c) {
  const members = c.members.map((m) => `<li>${account(m.address)}${m.this_rsu ? " <b>this RSU</b>" : ""}
    <small>member since epoch ${m.term}</small></li>`).join("");
  const votes = c.votes.length
    ? `<ul>${c.votes.map((v) => `<li>${v.add ? "add" : "remove"} ${account(v.candidate)}: ${v.votes} of
      ${v.needed} votes needed</li>`).join("")}</ul>`
    : `<p class="note">No open votes.</p>`;
  $("consortium").innerHTML = `<p>${esc(c.mode)} mode, authority ${account(c.authority)}, epoch ${c.epoch}</p>
    <ul>${members}</ul>${votes}`;
}

async function renderDashboard() {
  const [rounds, prices, chain, consortium] = await Promise.all([
    api("GET", "/api/rounds"), api("GET", "/api/prices"), api("GET", "/api/chain"), api("GET", "/api/consortium")]);
  renderRounds(rounds);
  renderPrices(prices);
  renderMap(mapPoints(rounds, chain));
  renderBlocks(chain.blocks);
  renderConsortium(consortium);
}

renderers.rsu = renderDashboard;
})();

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

// A refusal from the API: its message in plain words and, where it names them, the fields at fault.
class ApiError extends Error {
  constructor(message, status, problems) { super(message); this.status = status; this.problems = problems; }
}

// The 422 bodies (pydantic's list, our checks' "b_min (12.0) must be <= b_max (10.0)") and the
// refusals' "field 'x': ..." as [{field, msg}]; field is null when none is named.
function problemsOf(detail) {
  if (Array.isArray(detail)) {
    return detail.map((e) => {
      const loc = (e.loc || []).filter((p) => p !== "body");
      const msg = String(e.msg || "").replace(/^Value error, /, "");
      const named = loc.length ? String(loc[loc.length - 1]) : (msg.match(/^([a-z_]+) \(/) || [])[1];
      return {field: named || null, msg};
    });
  }
  const m = String(detail || "").match(/^field '([a-z_]+)': (.*)$/s);
  return [{field: m ? m[1] : null, msg: m ? m[2] : String(detail || "")}];
}

async function api(method, path, body) {
  const res = await fetch(path, {method, headers: {"Content-Type": "application/json"}, body: body ? JSON.stringify(body) : undefined});
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const problems = problemsOf(data.detail);
    const msg = problems.map((p) => p.msg).filter(Boolean).join("; ");
    throw new ApiError(msg || res.statusText, res.status, problems);
  }
  return data;
}

// --- Forms: fields named in words (data-short), checked here before anything is sent ------------
let lastForm = null; // the form last submitted: a refusal's fields are looked up in it first
const fieldOf = (name) => (lastForm && lastForm.elements[name]) || document.getElementById(name);
const shortName = (input) => (input && input.dataset.short) || (input && input.name) || "";
const plainNumber = (x) => String(Number(x));

// The API's wording with the paper's symbols replaced by the fields' names in words.
function plain(msg) {
  let out = String(msg).replace(/must be <=/g, "must not exceed").replace(/Input should be/g, "must be");
  out = out.replace(/\b([a-z]+(?:_[a-z]+)?) \(([-0-9.e+]+)\)/g, (all, sym, v) => {
    const input = fieldOf(sym);
    return input && input.dataset.short ? `${input.dataset.short} (${plainNumber(v)})` : all;
  });
  out = out.replace(/\b(b_min|b_max|v_min|v_max|c_min|c_max|s_t|s_r|rho|v|c)\b/g, (sym) => shortName(fieldOf(sym)) || sym);
  return out.charAt(0).toUpperCase() + out.slice(1);
}

function errorSlot(input) {
  const id = `${input.id || input.name}-error`;
  let slot = document.getElementById(id);
  if (!slot) {
    slot = document.createElement("span");
    slot.id = id;
    slot.className = "field-error";
    (input.closest(".field") || input.parentElement).appendChild(slot);
  }
  const described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
  if (!described.includes(id)) input.setAttribute("aria-describedby", described.concat(id).join(" "));
  return slot;
}

function fieldError(input, msg) {
  errorSlot(input).textContent = msg;
  if (msg) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
}

function clearFieldErrors(form) {
  if (!form) return;
  for (const input of form.querySelectorAll("input")) if (input.getAttribute("aria-invalid")) fieldError(input, "");
  const pw = $("password");
  if (pw && pw.getAttribute("aria-invalid")) fieldError(pw, "");
}

// What is wrong with one field, in plain words ("" when nothing): the browser's checks of the
// field's own attributes (required, min, max), then the pairs the market needs (data-le: not
// above that field; data-lt: below it).
function fieldProblem(input, form) {
  const v = input.validity;
  if (v.valueMissing) return "Required: please fill this in";
  if (v.badInput || v.typeMismatch) return "Please enter a number";
  if (v.rangeUnderflow) return `Must be at least ${input.min}`;
  if (v.rangeOverflow) return `Must be at most ${input.max}`;
  if (v.tooShort) return `Must be at least ${input.minLength} characters`;
  if (v.tooLong) return `Must be at most ${input.maxLength} characters`;
  if (v.patternMismatch) return input.title || "Not in the expected form";
  if (input.type !== "number" || input.value === "") return "";
  const a = Number(input.value);
  for (const [attr, worse, words] of [["le", (x, y) => x > y, "must not exceed"], ["lt", (x, y) => x >= y, "must be below"]]) {
    const other = input.dataset[attr] && form.elements[input.dataset[attr]];
    if (other && other.value !== "" && worse(a, Number(other.value))) {
      const name = shortName(input);
      return `${name.charAt(0).toUpperCase()}${name.slice(1)} ${words} ${shortName(other)} (${plainNumber(a)} ${attr === "le" ? ">" : ">="} ${plainNumber(other.value)})`;
    }
  }
  return "";
}

// Checks a form before its page script sends it; true when every field is fine.
function checkForm(form) {
  clearFieldErrors(form);
  let first = null;
  const pw = $("password");  // the drivers' forms act with the wallet's password
  if (pw && form.id !== "register" && !pw.value) { fieldError(pw, "Required: enter this vehicle's wallet password"); first = pw; }
  for (const input of form.querySelectorAll("input")) {
    const msg = fieldProblem(input, form);
    if (msg) { fieldError(input, msg); first = first || input; }
  }
  if (first) {
    $("error").textContent = "Please correct the fields marked below.";
    first.focus();
  }
  return !first;
}

// Runs before the form's own handler (capture): a form with a wrong field is not sent at all.
document.addEventListener("submit", (e) => {
  lastForm = e.target;
  if (!checkForm(e.target)) { e.preventDefault(); e.stopImmediatePropagation(); }
}, true);

// A refusal: in #error, and next to each field it names.
function fail(err) {
  const problems = err.problems || [];
  const placed = [];
  for (const p of problems) {
    const input = p.field && fieldOf(p.field);
    if (input && input.tagName === "INPUT") { fieldError(input, plain(p.msg)); placed.push(p); }
  }
  // The first field at fault takes the focus: the pages do not re-render a form being typed in.
  if (placed.length) fieldOf(placed[0].field).focus();
  const rest = problems.filter((p) => !placed.includes(p)).map((p) => plain(p.msg));
  $("error").textContent = rest.length ? rest.join("; ") : placed.length ? "Please correct the fields marked below." : plain(err.message);
}
// A seller's reply form's fields (pages.py's template #reply-form), ids made unique per round.
function replyFields(roundId) {
  const t = $("reply-form");
  return t ? t.innerHTML.replace(/ROUND/g, String(Number(roundId))) : "";
}
function ok() { $("error").textContent = ""; clearFieldErrors(lastForm); }
function password() { return $("password") ? $("password").value : ""; }
// A form's values: numbers as numbers; an empty field is left out, never sent as 0.
function formData(form) {
  lastForm = form;
  const out = {};
  for (const [k, v] of new FormData(form).entries()) {
    if (v === "") continue;
    out[k] = form.elements[k].type === "number" ? Number(v) : v;
  }
  return out;
}

function countdown(r) {
  const now = Date.now() / 1000;
  if (r.phase === "bidding") return `bids close in ${Math.max(0, Math.round(r.deadline - now))} s`;
  if (r.phase === "closing") return "bids closed; bids admitted in time are reaching the chain";
  if (r.phase === "reveal") return `offers open; the RSU settles in ${Math.max(0, Math.round(r.reveal_deadline - now))} s`;
  return r.phase;
}

// Each page's script registers its renderer (renderers[page]) and its form handlers (wirers).
const renderers = {};
const wirers = [];
let busy = false, again = false;
// A change that arrives while a render runs is not dropped: one more render follows it.
async function render() {
  if (busy) { again = true; return; }
  busy = true;
  try {
    if (needsVehicle() && (!me || unknownVehicle)) await chooseVehicle();
    else if (renderers[page]) await renderers[page]();
  } catch (err) {
    // A link with an address that is not a registered vehicle's: the same choice, said why.
    if (needsVehicle() && [404, 422].includes(err.status) && /vehicle|address/i.test(err.message)) {
      unknownVehicle = true;
      await chooseVehicle().catch(fail);
    } else fail(err);
  } finally {
    busy = false;
    keyboardScroll();
    document.body.dataset.rendered = "1";
    if (again) { again = false; render(); }
  }
}

// A table wider than a phone scrolls in its own box (style.css): such a box takes the keyboard's
// focus, so that it can be scrolled without a mouse (WCAG 2.1.1).
function keyboardScroll() {
  for (const el of document.querySelectorAll("main table, main .scroll")) {
    const scrolls = el.scrollWidth > el.clientWidth && getComputedStyle(el).overflowX !== "visible";
    if (scrolls && !el.hasAttribute("tabindex")) el.tabIndex = 0;
    else if (!scrolls && el.tabIndex === 0) el.removeAttribute("tabindex");
  }
}
window.addEventListener("resize", keyboardScroll);

// The buyer's and the seller's pages act for one vehicle (?address=...): without one, say so and
// offer the registered vehicles instead of forms that cannot work.
function needsVehicle() { return page === "buyer" || page === "seller"; }
let unknownVehicle = false;
async function chooseVehicle() {
  for (const s of document.querySelectorAll("main section:not(#account)")) s.hidden = true;
  const vehicles = await api("GET", "/api/vehicles");
  const links = vehicles.map((v) => `<li><a href="/${page}?address=${esc(v.address)}">vehicle <code>${esc(v.address)}</code></a></li>`).join("");
  $("account").innerHTML = `<h2>Choose a vehicle</h2>
    <p class="notice">${unknownVehicle ? `No vehicle <code>${esc(me)}</code> is registered here. ` : ""}This page acts for one vehicle. Choose yours below, or <a href="/">register a vehicle</a> first.</p>
    ${links ? `<ul class="choose">${links}</ul>` : "<p>No vehicle is registered yet.</p>"}`;
}

// A new vehicle's place defaults to where the RSU stands (settings rsu_lat, rsu_lon), unless
// the driver already typed one.
async function placeNearRsu() {
  const lat = $("register-lat"), lon = $("register-lon");
  if (!lat || !lon) return;
  const rsu = (await api("GET", "/api/chain")).rsu;
  if (lat.value === lat.defaultValue) lat.value = lat.defaultValue = rsu.lat;
  if (lon.value === lon.defaultValue) lon.value = lon.defaultValue = rsu.lon;
}

// The page scripts (driver.js, ...) load after this one: start once they all have.
window.addEventListener("DOMContentLoaded", () => {
  placeNearRsu().catch(() => {});  // the form's own defaults (Jinhua) stay
  for (const w of wirers) w();
  render();
  const events = new EventSource("/api/events");
  // The indicator says it in words, not by its colour alone.
  const live = (on) => { $("live").classList.toggle("on", on); $("live-text").textContent = on ? "live" : "reconnecting"; };
  events.onopen = () => live(true);
  events.onerror = () => live(false);
  events.onmessage = () => render();
  setInterval(render, 2000); // countdowns
});

"""The drivers' and the RSU's web pages: server-rendered shells, filled by /static/app.js.

Everything is served by the service itself (no CDN): one stylesheet, one script that calls the
REST API and re-renders on the live event stream (/api/events, server-sent events).
"""

from __future__ import annotations

from html import escape

_PASSWORD = (
    '<section><label>Wallet password <input id="password" type="password" autocomplete="off">'
    '</label> <button id="unlock" type="button">Show my details</button>'
    '<p class="note">Name, plate and location are shown only to the vehicle itself, after its'
    " password; everyone else sees what the chain shows (account, plate hash, balances).</p>"
    "</section>"
)

_FAUCET_ON = """
<section><h2>Top up (development faucet)</h2>
<p class="note">This service runs a development faucet: each vehicle may mint itself up to
_CAP tokens in all. In production the faucet is off and only the authority mints tokens.</p>
<form id="topup"><label>Tokens <input name="tokens" type="number" step="any" value="100"></label>
<button type="submit">Top up</button></form></section>"""

_FAUCET_OFF = """
<section><h2>Top up</h2>
<p class="note">Tokens are minted by the authority only (the development faucet is off):
ask the authority for a top-up of your account.</p></section>"""

_TITLES = {
    "home": "Vehicles",
    "buyer": "Buy energy",
    "seller": "Sell energy",
    "rsu": "RSU dashboard",
}

_BODIES = {
    "home": """
<section><h2>Register a vehicle</h2>
<form id="register">
  <label>Name <input name="name" required maxlength="60"></label>
  <label>Plate <input name="plate" required maxlength="20"></label>
  <label>Password <input name="password" type="password" required minlength="6"></label>
  <label>Latitude <input name="lat" type="number" step="any" value="57.7089"></label>
  <label>Longitude <input name="lon" type="number" step="any" value="11.9746"></label>
  <button type="submit">Register</button>
</form>
<p id="register-result" class="result" role="status"></p></section>
<section><h2>Registered vehicles</h2>
<p class="note">Only what the chain shows: the account and the hash of the plate.</p>
<table id="vehicles"></table></section>
""",
    "buyer": """
<section id="account"></section>
_PASSWORD
_FAUCET
<section><h2>Post a request</h2>
<form id="request">
  <label>b_min kWh <input name="b_min" type="number" step="any" value="2"></label>
  <label>b_max kWh <input name="b_max" type="number" step="any" value="10"></label>
  <label>value v <input name="v" type="number" step="any" value="0.95"></label>
  <label>v_min <input name="v_min" type="number" step="any" value="0.6"></label>
  <label>v_max <input name="v_max" type="number" step="any" value="1.0"></label>
  <button type="submit">Post request</button>
</form><p id="request-result" class="result" role="status"></p></section>
<section><h2>My requests and offers</h2><div id="my-rounds"></div></section>
<section><h2>Collect refunds</h2><form id="collect">
<button type="submit">Collect</button></form></section>
""",
    "seller": """
<section id="account"></section>
_PASSWORD
_FAUCET
<section><h2>Open requests near me</h2><div id="open-rounds"></div></section>
<section><h2>My replies</h2><div id="my-rounds"></div></section>
<section><h2>Withdraw payments</h2><form id="collect">
<button type="submit">Withdraw</button></form></section>
""",
    "rsu": """
<section><h2>Rounds</h2><div id="rounds"></div></section>
<section class="row">
<div><h2>Price history</h2><svg id="prices" width="420" height="220"></svg></div>
<div><h2>Map</h2><svg id="map" width="320" height="220"></svg></div></section>
<section><h2>Recent blocks</h2><table id="blocks"></table></section>
""",
}


def page(kind: str, *, faucet_tokens: float = 0.0) -> str:
    """The HTML of one page; the drivers' pages say whether the development faucet is on."""
    title = escape(_TITLES[kind])
    faucet = (
        _FAUCET_ON.replace("_CAP", f"{faucet_tokens:,.10g}") if faucet_tokens > 0 else _FAUCET_OFF
    )
    body = _BODIES[kind].replace("_PASSWORD", _PASSWORD).replace("_FAUCET", faucet)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>evtrade: {title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/style.css"></head>
<body data-page="{kind}">
<nav><a href="/">Vehicles</a> <a href="/rsu">RSU dashboard</a> <a href="/docs">API</a>
<span id="live" title="live updates">&#9679;</span></nav>
<h1>{title}</h1>
<p id="error" class="error" role="alert"></p>
{body}
<script src="/static/app.js"></script>
<script src="/static/driver.js"></script>
</body></html>"""

"""The drivers' and the RSU's web pages: server-rendered shells, filled by /static/app.js.

Everything is served by the service itself (no CDN): one stylesheet, one script that calls the
REST API and re-renders on the live event stream (/api/events, server-sent events).
"""

from __future__ import annotations

from html import escape

from evtrade.model.defaults import DEFAULT_RSU_LAT, DEFAULT_RSU_LON
from evtrade.service.dsm_page import PLAN_HEAD, PLAN_SCRIPTS, PLAN_TITLE, plan_body


def _field(
    form: str,
    name: str,
    label: str,
    value: object,
    help_text: str = "",
    *,
    short: str = "",
    kind: str = "number",
    attrs: str = "",
) -> str:
    """One labelled input with its help line and the slot for its error (filled by app.js).

    ``short`` names the field in error messages ("at least must not exceed at most");
    ``attrs`` adds the input's own checks (``required``, ``min``, ``max``, ``data-le``: not above
    that field, ``data-lt``: below it), which app.js checks before anything is sent.
    """
    fid = f"{form}-{name}"
    step = ' step="any" inputmode="decimal"' if kind == "number" else ""
    help_html = f'<small id="{fid}-help" class="help">{help_text}</small>' if help_text else ""
    described = f"{fid}-help {fid}-error" if help_text else f"{fid}-error"
    return (
        f'<div class="field"><label for="{fid}">{label}</label>'
        f'<input id="{fid}" name="{name}" type="{kind}"{step} value="{value}" required'
        f' data-short="{short or label}" aria-describedby="{described}" {attrs}>'
        f'{help_html}<span id="{fid}-error" class="field-error"></span></div>'
    )


_PASSWORD = (
    '<section><h2>Your wallet</h2><div class="field"><label for="password">Wallet password</label>'
    '<input id="password" name="password" type="password" autocomplete="current-password"'
    ' data-short="wallet password" aria-describedby="password-help password-error">'
    '<small id="password-help" class="help">The password you chose when registering: every action'
    " on this page is signed with this vehicle's key, unlocked by it.</small>"
    '<span id="password-error" class="field-error"></span></div>'
    ' <button id="unlock" type="button">Show my details</button>'
    '<p class="note">Name, plate and location are shown only to the vehicle itself, after its'
    " password; everyone else sees what the chain shows (account, plate hash, balances).</p>"
    "</section>"
)

#: The buyer's request (ETA's bid of buyer i): demand bounds, sealed value and price range.
_REQUEST_FIELDS = "".join(
    (
        _field(
            "request",
            "b_min",
            "Energy you need: at least (kWh)",
            2,
            "<code>b_min</code>: the least energy worth a trade to you.",
            short="at least",
            attrs='min="0" max="1000000" data-le="b_max"',
        ),
        _field(
            "request",
            "b_max",
            "Energy you need: at most (kWh)",
            10,
            "<code>b_max</code>: the most energy you would take.",
            short="at most",
            attrs='min="0.001" max="1000000"',
        ),
        _field(
            "request",
            "v",
            "What a kWh is worth to you (tokens/kWh)",
            0.95,
            "<code>v</code>: your private value; sealed (hidden) until the bid window closes.",
            short="your value",
            attrs='min="0" max="1000000" data-le="v_max"',
        ),
        _field(
            "request",
            "v_min",
            "The least you would pay per kWh (tokens/kWh)",
            0.6,
            "<code>v_min</code>: the bottom of your public price range; at most your value.",
            short="the least you would pay",
            attrs='min="0" max="1000000" data-le="v"',
        ),
        _field(
            "request",
            "v_max",
            "The most you would pay per kWh (tokens/kWh)",
            1.0,
            "<code>v_max</code>: the top of your public price range. Posting locks"
            " <code>v_max</code> &times; <code>b_max</code> tokens in escrow until settlement;"
            " what you do not pay comes back as a refund.",
            short="the most you would pay",
            attrs='min="0.001" max="1000000"',
        ),
    )
)

#: A new vehicle with the built-in wallet; its place defaults to the RSU's.
_REGISTER_FIELDS = "".join(
    (
        _field(
            "register",
            "name",
            "Name",
            "",
            "Shown only to you, after your password.",
            kind="text",
            short="name",
            attrs='maxlength="60" autocomplete="off"',
        ),
        _field(
            "register",
            "plate",
            "Number plate",
            "",
            "Letters, digits, spaces and dashes.",
            kind="text",
            short="number plate",
            attrs='maxlength="20" pattern="[A-Za-z0-9 \\-]+"'
            ' title="Letters, digits, spaces and dashes only"',
        ),
        _field(
            "register",
            "password",
            "Wallet password",
            "",
            "At least 6 characters; it unlocks your vehicle's key (kept encrypted).",
            kind="password",
            short="wallet password",
            attrs='minlength="6" maxlength="200" autocomplete="new-password"',
        ),
        _field(
            "register",
            "lat",
            "Latitude (degrees north)",
            DEFAULT_RSU_LAT,
            "Where the vehicle is: sellers see how far away a request is.",
            short="latitude",
            attrs='min="-90" max="90"',
        ),
        _field(
            "register",
            "lon",
            "Longitude (degrees east)",
            DEFAULT_RSU_LON,
            short="longitude",
            attrs='min="-180" max="180"',
        ),
    )
)

_TOKENS = _field(
    "topup", "tokens", "Tokens to add", 100, short="tokens", attrs='min="0.000001" max="1000000000"'
)

#: A seller's reply to an open request (ETA's bid of seller j), one per round: ROUND is its id.
_REPLY_FIELDS = "".join(
    (
        _field(
            "reply-ROUND",
            "c",
            "What a kWh costs you (tokens/kWh)",
            0.55,
            "<code>c</code>: your private cost; sealed (hidden) until the bid window closes.",
            short="your cost",
            attrs='min="0" max="1000000" data-le="c_max"',
        ),
        _field(
            "reply-ROUND",
            "c_min",
            "The least you would accept per kWh (tokens/kWh)",
            0.5,
            "<code>c_min</code>: the bottom of your public price range; at most your cost.",
            short="the least you would accept",
            attrs='min="0" max="1000000" data-le="c"',
        ),
        _field(
            "reply-ROUND",
            "c_max",
            "The most you would ask per kWh (tokens/kWh)",
            0.8,
            "<code>c_max</code>: the top of your public price range.",
            short="the most you would ask",
            attrs='min="0.001" max="1000000"',
        ),
        _field(
            "reply-ROUND",
            "s_t",
            "Energy in your battery now (kWh)",
            20,
            "<code>s_t</code>: the energy stored in your battery.",
            short="energy in your battery",
            attrs='min="0.001" max="1000000"',
        ),
        _field(
            "reply-ROUND",
            "s_r",
            "Energy you keep for yourself (kWh)",
            10,
            "<code>s_r</code>: your reserve, never sold; below the energy in your battery.",
            short="energy you keep",
            attrs='min="0" max="1000000" data-lt="s_t"',
        ),
        _field(
            "reply-ROUND",
            "rho",
            "Energy lost in the transfer (share, 0 to 1)",
            0.05,
            "<code>rho</code>: the share of energy lost between your battery and the buyer's"
            " (0.05 = 5 %).",
            short="energy lost",
            attrs='min="0.000001" max="1"',
        ),
    )
)

_FAUCET_ON = """
<section><h2>Top up (development faucet)</h2>
<p class="note">This service runs a development faucet: each vehicle may mint itself up to
_CAP tokens in all. In production the faucet is off and only the authority mints tokens.</p>
<form id="topup" novalidate>_TOKENS
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
    "round": "Round",
}

_BODIES = {
    "home": """
<section><h2>Register a vehicle</h2>
<form id="register" novalidate>_REGISTER
  <button type="submit">Register</button>
</form>
<p id="register-result" class="result" role="status"></p></section>
<section><h2>Registered vehicles</h2>
<p class="note">Only what the chain shows: the account and the hash of the plate.</p>
<div class="scroll"><table id="vehicles"></table></div></section>
""",
    "buyer": """
<section id="account"></section>
_PASSWORD
_FAUCET
<section><h2>Post a request</h2>
<p class="note">Sellers nearby reply with offers during the bid window; you then choose one.
Prices are in tokens per kWh.</p>
<form id="request" novalidate>_REQUEST
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
<section><h2>Open requests near me</h2>
<p class="note">Reply to a buyer's request with your offer; prices are in tokens per kWh.</p>
<div id="open-rounds"></div>
<template id="reply-form">_REPLY</template></section>
<section><h2>My replies</h2><div id="my-rounds"></div></section>
<section><h2>Withdraw payments</h2><form id="collect">
<button type="submit">Withdraw</button></form></section>
""",
    "rsu": """
<section><h2>Rounds</h2>
<p class="note">Open a round to see its bids (once the bid window has closed), offers, trades
and the audit of its settlement.</p><div id="rounds"></div></section>
<section class="row">
<div class="panel"><h2>Price history</h2>
<div id="prices" class="chart" role="img" aria-label="price of each trade over time"></div>
<p id="prices-note" class="note"></p></div>
<div class="panel"><h2>Map</h2><div id="map" class="map"></div>
<p id="map-note" class="note" role="status"></p></div></section>
<section><h2>Recent blocks</h2>
<p class="note">The latest blocks of the chain and what each transaction did.</p>
<div class="scroll" tabindex="0" role="region" aria-label="recent blocks">
<table id="blocks"></table></div></section>
<section><h2>Consortium</h2>
<p class="note">The RSUs on this chain, the authority, and the open membership votes (an RSU
votes with <code>evtrade rsu vote</code>; docs/consortium.md).</p>
<div id="consortium"></div></section>
""",
    "round": """
<section id="round-summary"></section>
<section><h2>Bids</h2><p class="note">Values and costs are sealed until the bid window closes;
then the RSU reveals them on chain.</p><div id="round-bids"></div></section>
<section><h2>Offers and prices</h2><div id="round-offers"></div></section>
<section><h2>Trades</h2><div id="round-trades"></div></section>
<section><h2>Audit</h2><div id="round-audit"></div></section>
""",
}

#: Each page's own stylesheets and scripts: the dashboard's chart and map libraries, vendored
#: from the npm registry by ``make vendor`` (:mod:`evtrade.service.assets`), and its script.
_HEAD = {
    "rsu": '<link rel="stylesheet" href="/static/vendor/uPlot.min.css">\n'
    '<link rel="stylesheet" href="/static/vendor/leaflet.css">\n'
    '<link rel="stylesheet" href="/static/dashboard.css">',
    "round": '<link rel="stylesheet" href="/static/dashboard.css">',
}
_SCRIPTS = {
    "rsu": '<script src="/static/vendor/uPlot.iife.min.js"></script>\n'
    '<script src="/static/vendor/leaflet.js"></script>\n'
    '<script src="/static/dashboard.js"></script>',
    "round": '<script src="/static/round.js"></script>',
}

# The driver's DSM page (evtrade.service.dsm_page).
_TITLES["plan"], _BODIES["plan"] = PLAN_TITLE, plan_body(_field)
_HEAD["plan"], _SCRIPTS["plan"] = PLAN_HEAD, PLAN_SCRIPTS


def page(kind: str, *, faucet_tokens: float = 0.0) -> str:
    """The HTML of one page; the drivers' pages say whether the development faucet is on."""
    title = escape(_TITLES[kind])
    faucet = (
        _FAUCET_ON.replace("_CAP", f"{faucet_tokens:,.10g}") if faucet_tokens > 0 else _FAUCET_OFF
    )
    body = (
        _BODIES[kind]
        .replace("_PASSWORD", _PASSWORD)
        .replace("_FAUCET", faucet)
        .replace("_TOKENS", _TOKENS)
        .replace("_REGISTER", _REGISTER_FIELDS)
        .replace("_REQUEST", _REQUEST_FIELDS)
        .replace("_REPLY", _REPLY_FIELDS)
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>evtrade: {title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/favicon.ico" type="image/svg+xml">
<link rel="stylesheet" href="/static/style.css">{_HEAD.get(kind, "")}</head>
<body data-page="{kind}">
<header><nav aria-label="pages"><a href="/">Vehicles</a> <a href="/rsu">RSU dashboard</a>
<a href="/plan">Plan a charge</a> <a href="/docs">API</a></nav>
<span id="live" role="status"><span aria-hidden="true">&#9679;</span>
<span id="live-text">connecting</span></span></header>
<main><h1>{title}</h1>
<p id="error" class="error" role="alert"></p>
{body}
</main>
<script src="/static/app.js"></script>
<script src="/static/driver.js"></script>
{_SCRIPTS.get(kind, "")}
</body></html>"""

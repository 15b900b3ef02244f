"""The driver's DSM page, ``/plan`` (the thesis's Fig. 7.1 front-end; docs/dsm.md "The driver's
page"): the form in words, the plan table, the day's price chart and the bill. Filled by
/static/plan.js; :mod:`evtrade.service.pages` renders it with its own field helper."""

from __future__ import annotations

from collections.abc import Callable

from evtrade.model.defaults import DEFAULT_RSU_LAT, DEFAULT_RSU_LON

PLAN_TITLE = "Plan a charge"
#: uPlot when ``make vendor`` has put it under static/vendor/ (plan.js draws an SVG otherwise).
PLAN_HEAD = '<link rel="stylesheet" href="/static/vendor/uPlot.min.css">'
PLAN_SCRIPTS = (
    '<script src="/static/vendor/uPlot.iife.min.js" onerror="this.remove()"></script>\n'
    '<script src="/static/plan.js"></script>'
)


def plan_body(field: Callable[..., str]) -> str:
    """The page's body; ``field`` is :func:`evtrade.service.pages._field` (a labelled input)."""
    fields = "".join(
        (
            field(
                "plan",
                "capacity_kwh",
                "Battery capacity (kWh)",
                60,
                "How much your battery holds when full.",
                short="battery capacity",
                attrs='min="0.001" max="1000"',
            ),
            field(
                "plan",
                "charge_percent",
                "Charge now (%)",
                30,
                "How full the battery is now, in percent.",
                short="charge now",
                attrs='min="0" max="100"',
            ),
            field(
                "plan",
                "target_percent",
                "Charge wanted at departure (%)",
                80,
                "How full you want it when you leave.",
                short="charge wanted",
                attrs='min="0" max="100"',
            ),
            field(
                "plan",
                "soh_percent",
                "Battery state of health (%)",
                100,
                "From your car's battery report; 80 % or more lets a car sell by V2G.",
                short="state of health",
                attrs='min="0" max="100"',
            ),
            field(
                "plan",
                "arrival",
                "Plug-in hour (0 to 23)",
                0,
                "The hour of the day you plug in (0 = midnight).",
                short="plug-in hour",
                attrs='min="0" max="23" data-lt="departure"',
            ),
            field(
                "plan",
                "departure",
                "Departure hour (1 to 24)",
                7,
                "The hour you leave: charging ends when it starts.",
                short="departure hour",
                attrs='min="1" max="24"',
            ),
            field(
                "plan",
                "power_kw",
                "Charging power (kW)",
                11,
                "What your plug delivers (at most 22 kW).",
                short="charging power",
                attrs='min="0.001" max="22"',
            ),
            field(
                "plan",
                "lat",
                "Latitude (degrees north)",
                DEFAULT_RSU_LAT,
                "Where you park: the nearest solar panel that covers your charge is chosen.",
                short="latitude",
                attrs='min="-90" max="90"',
            ),
            field(
                "plan",
                "lon",
                "Longitude (degrees east)",
                DEFAULT_RSU_LON,
                short="longitude",
                attrs='min="-180" max="180"',
            ),
        )
    )
    commit = "".join(
        (
            field(
                "commit",
                "address",
                "Your vehicle's account",
                "",
                "The account shown when you registered (0x...).",
                kind="text",
                short="vehicle account",
                attrs='pattern="0x[0-9a-fA-F]{40}" autocomplete="off"',
            ),
            field(
                "commit",
                "password",
                "Wallet password",
                "",
                "Your vehicle signs the commitment with its key, unlocked by this password.",
                kind="password",
                short="wallet password",
                attrs='autocomplete="current-password"',
            ),
        )
    )
    return f"""
<section><h2>Your car and your day</h2>
<p class="note">The aggregator (this RSU) posts tomorrow's grid prices a day ahead. Tell it about
your battery and when you leave: it plans your charge from a nearby solar panel if one covers it,
else in the grid's cheapest hours given what other drivers have already committed.</p>
<form id="plan" novalidate>{fields}
  <button type="submit">Plan my charge</button>
</form></section>
<section aria-labelledby="plan-heading"><h2 id="plan-heading">Your plan</h2>
<p id="plan-summary" class="result" role="status">No plan yet: fill in the form above.</p>
<div class="scroll"><table id="plan-table" tabindex="0"
 aria-label="your plan, hour by hour"></table></div>
</section>
<section><h2>Commit the plan</h2>
<p class="note">Committing escrows the most the plan could cost (every hour at its load cap);
after the day the contract computes the real bill from everyone's commitments and refunds the
rest.</p>
<form id="commit" novalidate>{commit}
  <button type="submit">Commit this plan</button>
</form><p id="commit-result" class="result" role="status"></p></section>
<section aria-labelledby="day-heading"><h2 id="day-heading">The day's prices</h2>
<p id="day-summary" class="note" role="status"></p>
<div id="day-chart" class="chart" role="img"
 aria-label="base price and dynamic price per hour, tokens per kWh"></div>
<div class="scroll"><table id="day-table" tabindex="0"
 aria-label="the day's prices and load"></table></div>
</section>
<section aria-labelledby="bill-heading"><h2 id="bill-heading">Your bill</h2>
<div id="bill" role="status"><p class="note">Commit a plan to see its bill here.</p></div>
<button id="settle" type="button" hidden>Settle the day</button>
<button id="withdraw" type="button" hidden>Take back my refund</button>
</section>
"""

"""``evtrade clear`` and ``evtrade montecarlo``: one round of a market, one unit trade's odds."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import typer

from evtrade.cli import render
from evtrade.cli.options import (
    DEFAULT_MECHANISM,
    FormatOption,
    MarketFileArgument,
    MechanismName,
    OutputFormat,
    VolumeRule,
    check_option,
)
from evtrade.market import expected_gains_exact, expected_outcome
from evtrade.market.mechanisms import run_mechanism
from evtrade.market.metrics import DEFAULT_SAMPLES
from evtrade.model.files import load_market_with_warnings
from evtrade.model.participants import MAX_PRICE

#: Most Monte Carlo samples: ~10 float arrays of this length are alive at once (~800 MB).
MAX_SAMPLES = 10_000_000


def clear(
    market_file: MarketFileArgument,
    mechanism: Annotated[
        MechanismName, typer.Option(help="Pricing mechanism.")
    ] = DEFAULT_MECHANISM,
    price: Annotated[float | None, typer.Option(help="Posted price (single-price only).")] = None,
    volumes: Annotated[
        VolumeRule, typer.Option(help="p1: welfare optimum; theorem2: ETA eq. 18 projected.")
    ] = VolumeRule.p1,
    output: FormatOption = OutputFormat.table,
    alpha: Annotated[
        float | None, typer.Option(help="babg: buyers' price adjustment in [0, 1] (0.5).")
    ] = None,
    beta: Annotated[
        float | None, typer.Option(help="babg: sellers' price adjustment in [0, 1] (0.5).")
    ] = None,
    grid_buy: Annotated[
        float | None, typer.Option(help="babg: price the grid pays, p^G (0.6).")
    ] = None,
    grid_sell: Annotated[
        float | None, typer.Option(help="babg: price the grid charges, r^G (1.0).")
    ] = None,
    all_pairs: Annotated[
        bool,
        typer.Option("--all-pairs", help="Table: list the pairs that may trade but get 0 kWh too."),
    ] = False,
) -> None:
    """Clear one round: tradable pairs, rejected bids, unmatched participants, totals.

    Every input gets an answer or a one-line error (exit code 1). What the file says that the
    market ignores (an unknown key, max_distance_km without locations) is a warning on stderr.
    """
    for name, value in (
        ("price", price),
        ("grid_buy", grid_buy),
        ("grid_sell", grid_sell),
        ("alpha", alpha),
        ("beta", beta),
    ):
        check_option(name, value, 1.0 if name in ("alpha", "beta") else MAX_PRICE)
    loaded = load_market_with_warnings(market_file)
    result = run_mechanism(
        loaded.market,
        mechanism.value,
        price=price,
        volumes=volumes.value,
        alpha=alpha,
        beta=beta,
        grid_buy=grid_buy,
        grid_sell=grid_sell,
    )
    record = result.to_dict()
    render.result(
        record,
        as_json=output is OutputFormat.json,
        table=lambda: render.clearing(record, all_pairs=all_pairs),
        warnings=loaded.warnings,
    )


def montecarlo(
    mechanism: Annotated[MechanismName, typer.Option(help="Mechanism.")] = DEFAULT_MECHANISM,
    price: Annotated[float | None, typer.Option(help="Posted price (single-price).")] = None,
    v_lo: Annotated[
        float, typer.Option(min=0.0, max=MAX_PRICE, help="Buyer values ~ U\\[v_lo, v_hi].")
    ] = 0.0,
    v_hi: Annotated[float, typer.Option(min=0.0, max=MAX_PRICE)] = 1.0,
    c_lo: Annotated[
        float, typer.Option(min=0.0, max=MAX_PRICE, help="Seller costs ~ U\\[c_lo, c_hi].")
    ] = 0.0,
    c_hi: Annotated[float, typer.Option(min=0.0, max=MAX_PRICE)] = 1.0,
    samples: Annotated[
        int,
        typer.Option(
            min=2, max=MAX_SAMPLES, help=f"Number of buyer-seller draws (at most {MAX_SAMPLES:,})."
        ),
    ] = DEFAULT_SAMPLES,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the generator.")] = 0,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
) -> None:
    """Expected gains from trade of one unit trade (9/64 for ETA with U[0,1] types)."""
    check_option("price", price)
    out = expected_outcome(
        mechanism.value,
        v_range=(v_lo, v_hi),
        c_range=(c_lo, c_hi),
        price=price,
        samples=samples,
        rng=np.random.default_rng(seed),
    )
    exact = None
    if (v_lo, v_hi, c_lo, c_hi) == (0.0, 1.0, 0.0, 1.0):
        exact = expected_gains_exact(mechanism.value, price=0.5 if price is None else price)
    record = {
        "mechanism": mechanism.value,
        "samples": samples,
        "gains_from_trade": out.gains.mean,
        "stderr": out.gains.stderr,
        "exact": exact,
        "trade_probability": out.trade_probability,
        "satisfaction": out.satisfaction,
    }
    if output is OutputFormat.json:
        render.echo(render.json_text(record, finite=True))
    else:
        render.key_values(record)

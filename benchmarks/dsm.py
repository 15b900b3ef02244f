"""DSM benchmark: seconds to the Nash equilibrium of the charging game, and HiGHS on the same QPs.

Run: ``.venv/bin/python benchmarks/dsm.py`` (``--quick`` for small sizes only).

A day of N vehicles over T slots (24 h): base prices from the thesis's Fig. 7.6 (24 hourly SEK/kWh
values, repeated within each hour), arrivals in the first half of the day, stays of 4-16 h at
3.7, 7.4 or 11 kW, 5-40 kWh to store (efficiency 0.95, capped by the window). The forecast Q_t is
the mean load, and mu is set so that the mean load moves the price by 0.1 SEK/kWh (a third of the
base price), so the game is neither trivial nor dominated by congestion at every size.

Reported per size: the equilibrium's seconds (best of ``--repeat``, the certificate included),
Newton iterations, the certified max deviation gain; HiGHS's seconds on the potential QP (whose
minimiser is the same equilibrium) and on the social optimum, at the sizes it still handles
(``--highs-max`` vehicles), and the ratio of its time to ours.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from evtrade.market.dsm_game import (
    ChargingGame,
    nash_equilibrium,
    potential,
    social_optimum,
    solve_qp_highs,
)

#: Fig. 7.6's base prices, SEK/kWh, hour 1 = 00:00-01:00.
THESIS_PRICES = np.array(
    [0.4725028, 0.4861648, 0.465014, 0.449834, 0.446292, 0.3855973, 0.3444848, 0.3584757,
     0.3915934, 0.3911633, 0.3354274, 0.3235617, 0.3013483, 0.276276, 0.2911524, 0.276782,
     0.2633224, 0.257048, 0.2564408, 0.2829552, 0.3315312, 0.3910368, 0.4200812, 0.4249388]
)  # fmt: skip


def day_game(n: int, t: int, seed: int = 0) -> ChargingGame:
    """The benchmark's game of ``n`` vehicles over ``t`` slots (module docstring)."""
    rng = np.random.default_rng(seed)
    hours = 24.0 / t
    phi = THESIS_PRICES[(np.arange(t) * hours).astype(int)]
    arrival = rng.integers(0, t // 2, n)
    stay = np.maximum(1, (rng.uniform(4, 16, n) / hours).astype(int))
    departure = np.minimum(t, arrival + stay)
    power = rng.choice([3.7, 7.4, 11.0], n)
    slots = np.arange(t)
    window = (slots >= arrival[:, None]) & (slots < departure[:, None])
    upper = window * (power * hours)[:, None]
    demand = np.minimum(rng.uniform(5, 40, n) / 0.95, upper.sum(axis=1))
    mean_load = demand.sum() / t
    return ChargingGame(
        base_price=phi,
        forecast=np.full(t, mean_load),
        mu=0.1 / mean_load,
        upper=upper,
        demand=demand,
    )


def best_of(repeat: int, fn):  # type: ignore[no-untyped-def]
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument(
        "--highs-max", type=int, default=300, help="most vehicles given to HiGHS (300 x 96: ~2 min)"
    )
    args = ap.parse_args()
    if args.quick:
        sizes = [(100, 24), (300, 24), (1000, 96)]
    else:
        sizes = [(100, 24), (300, 24), (100, 96), (300, 96), (1000, 96), (3000, 96),
                 (10000, 24), (10000, 48), (10000, 96), (20000, 96)]  # fmt: skip
    print(f"{'N':>6} {'T':>4} {'NE s':>8} {'iter':>5} {'max gain':>10} {'HiGHS NE s':>11} "
          f"{'ratio':>7} {'HiGHS SO s':>11} {'PoA':>8}")  # fmt: skip
    for n, t in sizes:
        game = day_game(n, t, seed=n + t)
        secs, eq = best_of(args.repeat, lambda g=game: nash_equilibrium(g))
        line = f"{n:>6} {t:>4} {secs:>8.3f} {eq.iterations:>5} {eq.max_gain:>10.1e}"
        if n <= args.highs_max:
            h_secs, x = best_of(1, lambda g=game: solve_qp_highs(g, g.mu, g.mu, scale=1.0 / g.mu))
            # the same equilibrium: HiGHS's potential is not below ours (up to its tolerance)
            gap = potential(game, eq.schedule) - potential(game, x)
            o_secs, opt = best_of(1, lambda g=game: social_optimum(g))
            line += (
                f" {h_secs:>11.3f} {h_secs / secs:>7.1f} {o_secs:>11.3f} "
                f"{eq.cost / opt.cost:>8.5f}  (potential ours - HiGHS {gap:.1e})"
            )
        print(line, flush=True)


if __name__ == "__main__":
    main()

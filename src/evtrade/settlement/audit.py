"""Off-chain audit of a settled round: anyone can check the RSU.

The contract enforces prices and feasibility; optimality it cannot check cheaply, so the RSU is
trusted for it and this audit verifies it. From the chain's events alone it rebuilds the round's
revealed bids, recomputes Theorem 1 (exactly, as the contract does, and in floating point with the
market library) and the P1 volumes, and reports every settled trade that differs.

The P1 volumes are those of the problem the contract can settle: the planner's optimum over the
contract's energy units (:func:`evtrade.settlement.planning.plan_round`), with the sellers'
capacities of (13) in units and the buyers whose minimums cannot be met in whole units excluded
by the project's rule. Comparing with the library's real-valued clearing instead flagged honest
RSUs for those exclusions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from evtrade.market import clear
from evtrade.market.geo import great_circle_km
from evtrade.market.pricing import equilibrium_ask, equilibrium_bid, transaction_price
from evtrade.settlement import units
from evtrade.settlement.planning import plan_round
from evtrade.settlement.views import RoundView, has_revealed_pair, round_market

#: Rounding to energy units moves a volume by less than a unit (1e-6 kWh, planning.plan_round).
DEFAULT_VOLUME_TOL_KWH = 1e-4


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the audit found wrong."""

    kind: str  # "price", "volume", "missing", "range", "unsettled"
    buyer: str | None
    seller: str | None
    message: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What the audit of one round found."""

    round_id: int
    settled: bool
    trades: int
    revealed_buyers: int
    revealed_sellers: int
    max_price_error: float
    max_volume_gap_kwh: float
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """True when nothing differs."""
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = asdict(self)
        out["ok"] = self.ok
        return out


def audit_round(view: RoundView, *, volume_tol_kwh: float = DEFAULT_VOLUME_TOL_KWH) -> AuditReport:
    """Audit one round rebuilt from chain events (:meth:`Ledger.round_view`)."""
    findings: list[Finding] = []
    q_of = {q.buyer: q for q in view.requests}
    p_of = {p.seller: p for p in view.replies}
    max_price_error = 0.0
    settled_energy: dict[tuple[str, str], int] = {}
    for t in view.trades:
        settled_energy[(t.buyer, t.seller)] = settled_energy.get((t.buyer, t.seller), 0) + t.energy
        q, p = q_of.get(t.buyer), p_of.get(t.seller)
        if q is None or p is None or q.value is None or p.value is None:
            findings.append(Finding("price", t.buyer, t.seller, "trade with an unrevealed bid"))
            continue
        exact = units.fixed_prices(q.value, q.v_max, p.value, p.c_min)
        if (t.buyer_price, t.seller_price, t.price, True) != exact:
            findings.append(
                Finding(
                    "price", t.buyer, t.seller, f"settled prices differ from Theorem 1: {exact}"
                )
            )
        # Theorem 1 in floating point (the market library) against the fixed point on chain.
        v, v_max, c, c_min = map(units.to_tokens, (q.value, q.v_max, p.value, p.c_min))
        P = float(equilibrium_bid(v, v_max, c_min))
        R = float(equilibrium_ask(c, c_min, v_max))
        T = float(transaction_price(np.array([P]), np.array([R]))[0])
        chain_prices = (t.buyer_price, t.seller_price, t.price)
        err = max(abs(units.to_tokens(x) - f) for x, f in zip(chain_prices, (P, R, T), strict=True))
        max_price_error = max(max_price_error, err)
        if err > 1e-12 * max(1.0, abs(P)):
            findings.append(
                Finding(
                    "price",
                    t.buyer,
                    t.seller,
                    f"on-chain price differs from the library by {err:.3g}",
                )
            )

    market = round_market(view) if has_revealed_pair(view) else None
    max_gap = 0.0
    if view.settled and market is not None:
        x = np.asarray(plan_round(view).x, dtype=float)
        if x.shape != (market.n_buyers, market.n_sellers):  # no plannable pair: the library's
            x = np.asarray(clear(market, "eta").volume_matrix, dtype=float)
        for i, b in enumerate(market.buyers):
            for j, s in enumerate(market.sellers):
                settled = units.to_kwh(settled_energy.pop((b.id, s.id), 0))
                if settled > 0 and market.auctioneer.max_distance_km is not None:
                    where = [np.nan if c is None else c for c in (b.lat, b.lon, s.lat, s.lon)]
                    d = float(great_circle_km(*where))
                    if math.isfinite(d) and d > market.auctioneer.max_distance_km:
                        findings.append(Finding("range", b.id, s.id, f"pair is {d:.2f} km apart"))
                gap = abs(settled - x[i, j])
                max_gap = max(max_gap, gap)
                if gap > volume_tol_kwh:
                    kind = "missing" if settled == 0 else "volume"
                    message = f"settled {settled:.6f} kWh, the P1 optimum is {x[i, j]:.6f} kWh"
                    findings.append(Finding(kind, b.id, s.id, message))
    for (buyer, seller), energy in settled_energy.items():
        if view.settled:
            findings.append(
                Finding(
                    "volume", buyer, seller, f"settled {energy} units outside the revealed round"
                )
            )
    return AuditReport(
        round_id=view.round_id,
        settled=view.settled,
        trades=len(view.trades),
        revealed_buyers=sum(q.value is not None for q in view.requests),
        revealed_sellers=sum(p.value is not None for p in view.replies),
        max_price_error=max_price_error,
        max_volume_gap_kwh=max_gap,
        findings=tuple(findings),
    )

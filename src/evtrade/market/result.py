"""The common result of every round mechanism: the pairs that may trade, the volumes, the totals.

:func:`assemble_result` builds it from a mechanism's arrays; ``ClearingResult.to_dict()`` is the
CLI's ``--format json`` output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evtrade.market.admission import Admission
from evtrade.market.metrics import pair_satisfaction
from evtrade.model import Market

FloatArray = NDArray[np.float64]

#: Volumes below this (kWh) are reported as 0.
ZERO_KWH = 1e-12


@dataclass(frozen=True)
class Pair:
    """A buyer-seller pair allowed to trade, with its prices and the volume allocated to it."""

    buyer: str
    seller: str
    P: float
    R: float
    T: float
    volume: float
    distance_km: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "buyer": self.buyer,
            "seller": self.seller,
            "P": self.P,
            "R": self.R,
            "T": self.T,
            "volume": self.volume,
            "distance_km": self.distance_km,
        }


@dataclass(frozen=True)
class PairTable:
    """Every pair that may trade, as arrays in input order (buyers, then sellers)."""

    buyer_ids: tuple[str, ...]
    seller_ids: tuple[str, ...]
    i: NDArray[np.intp]
    j: NDArray[np.intp]
    P: FloatArray
    R: FloatArray
    T: FloatArray
    volume: FloatArray
    distance_km: FloatArray  # NaN where a participant has no location

    def pairs(self) -> tuple[Pair, ...]:
        return tuple(
            Pair(
                buyer=self.buyer_ids[i],
                seller=self.seller_ids[j],
                P=P,
                R=R,
                T=T,
                volume=v,
                distance_km=None if d != d else d,  # NaN: no location
            )
            for i, j, P, R, T, v, d in zip(
                self.i.tolist(),
                self.j.tolist(),
                self.P.tolist(),
                self.R.tolist(),
                self.T.tolist(),
                self.volume.tolist(),
                self.distance_km.tolist(),
                strict=True,
            )
        )


@dataclass(frozen=True)
class ClearingResult:
    """Outcome of one round of any mechanism. ``to_dict()`` is exactly the CLI's ``--format json``
    output.

    Attributes
    ----------
    pairs : every pair that may trade (bid covers ask under the mechanism, within distance,
        both bids admitted), in input order of buyers then sellers, volume 0 where the optimum
        gives none. Built on first use from ``pair_table`` (the same data as arrays).
    rejected : bids refused by Algorithm 1 (``{"id", "role", "reason"}``).
    unmatched : admitted participants that trade nothing, with the reason.
    welfare : the mechanism's welfare objective at the allocation (ETA: P1, eq. 11; babg and
        ida: SWM2, eq. 12).
    """

    mechanism: str
    volumes_rule: str
    price: float | None
    pair_table: PairTable = field(repr=False, compare=False)
    rejected: tuple[dict[str, str], ...]
    unmatched: tuple[dict[str, str], ...]
    welfare: float
    total_volume: float
    gains_from_trade: float
    total_payment: float
    satisfaction: dict[str, float | None]
    solver: dict[str, Any]
    volume_matrix: FloatArray = field(repr=False, compare=False)

    @cached_property
    def pairs(self) -> tuple[Pair, ...]:
        """The pairs as objects, built on first use (a city-scale round has millions)."""
        return self.pair_table.pairs()

    def to_dict(self) -> dict[str, Any]:
        return {
            "mechanism": self.mechanism,
            "volumes": self.volumes_rule,
            "price": self.price,
            "pairs": [p.to_dict() for p in self.pairs],
            "rejected": [dict(r) for r in self.rejected],
            "unmatched": [dict(u) for u in self.unmatched],
            "welfare": self.welfare,
            "total_volume": self.total_volume,
            "gains_from_trade": self.gains_from_trade,
            "total_payment": self.total_payment,
            "satisfaction": dict(self.satisfaction),
            "solver": dict(self.solver),
        }


def assemble_result(
    market: Market,
    *,
    admission: Admission,
    mechanism: str,
    volumes_rule: str,
    price: float | None,
    P: FloatArray,
    R: FloatArray,
    T: FloatArray,
    dist: FloatArray,
    pairs_mask: NDArray[np.bool_],
    x: FloatArray,
    welfare: float,
    unmatched: tuple[dict[str, str], ...],
    solver: dict[str, Any],
) -> ClearingResult:
    """The common result shape of every mechanism (the CLI's JSON), from its arrays.

    ``P``, ``R``, ``T`` are (N, M): what the buyer bids, what the seller asks, what the buyer pays
    per kWh; ``x`` the delivered kWh per pair; ``admission`` is the mechanism's own Algorithm 1
    verdict (not recomputed).
    """
    adm = admission
    B, S = market.buyer_arrays, market.seller_arrays
    pi, pj = np.nonzero(pairs_mask)
    table = PairTable(
        buyer_ids=tuple(b.id for b in market.buyers),
        seller_ids=tuple(s.id for s in market.sellers),
        i=pi,
        j=pj,
        P=P[pi, pj],
        R=R[pi, pj],
        T=T[pi, pj],
        volume=x[pi, pj],
        distance_km=np.broadcast_to(dist, pairs_mask.shape)[pi, pj],
    )
    rejected = tuple(
        {"id": p.id, "role": role, "reason": adm.reasons[p.id]}
        for role, group in (("buyer", market.buyers), ("seller", market.sellers))
        for p in group
        if p.id in adm.reasons
    )
    ti, tj = np.nonzero(x > 0)  # traded pairs only: a city-scale round trades few of its pairs
    weights = x[ti, tj]
    sat_b, sat_s = pair_satisfaction(P[ti, tj], R[ti, tj], T[ti, tj])
    total = float(weights.sum())
    satisfaction: dict[str, float | None] = {
        "buyers": float(np.dot(sat_b, weights) / total) if total > 0 else None,
        "sellers": float(np.dot(sat_s, weights) / total) if total > 0 else None,
    }
    mean = None
    if total > 0:
        mean = 0.5 * (float(satisfaction["buyers"] or 0.0) + float(satisfaction["sellers"] or 0.0))
    satisfaction["mean"] = mean
    return ClearingResult(
        mechanism=mechanism,
        volumes_rule=volumes_rule,
        price=price,
        pair_table=table,
        rejected=rejected,
        unmatched=unmatched,
        welfare=welfare,
        total_volume=float(x.sum()),
        gains_from_trade=float(np.dot(weights, B["v"][ti] - S["c"][tj])),
        total_payment=float(np.dot(weights, T[ti, tj])),
        satisfaction=satisfaction,
        solver=solver,
        volume_matrix=x,
    )

"""Why an admitted participant trades nothing: one kernel, each mechanism with its own wording.

A mechanism describes each side as :class:`Wording`: conditions checked in order (the first that
holds gives the reason) and the reason when none holds. Buyers the exclusion rule left out
(:mod:`evtrade.market.feasibility`) are reported with the rule's own reason first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from evtrade.model import Market

BoolArray = NDArray[np.bool_]

#: Shared wording: a seller with nothing above its reserve.
NO_SPARE = "no spare energy (s_t <= s_r)"
#: Shared wording: the welfare optimum leaves a buyer / a seller out.
OPTIMUM_SKIPS_BUYER = "the welfare optimum allocates no energy to this buyer"
OPTIMUM_SKIPS_SELLER = "the welfare optimum takes no energy from this seller"


@dataclass(frozen=True)
class Wording:
    """Reasons for one side: ``rules`` as ``(mask over the side, reason)`` checked in order,
    ``otherwise`` when no mask holds."""

    rules: tuple[tuple[BoolArray, str], ...]
    otherwise: str

    def reason(self, k: int) -> str:
        for mask, text in self.rules:
            if mask[k]:
                return text
        return self.otherwise


def unmatched(
    market: Market,
    *,
    buyers: BoolArray,
    sellers: BoolArray,
    excluded: Mapping[int, str],
    buyer_wording: Wording,
    seller_wording: Wording,
) -> tuple[dict[str, str], ...]:
    """``{"id", "role", "reason"}`` for every participant in ``buyers`` / ``sellers`` (the
    admitted ones that trade nothing), buyers first, each side in input order."""
    out: list[dict[str, str]] = []
    for i in np.flatnonzero(buyers).tolist():
        reason = excluded[i] if i in excluded else buyer_wording.reason(i)
        out.append({"id": market.buyers[i].id, "role": "buyer", "reason": reason})
    for j in np.flatnonzero(sellers).tolist():
        out.append(
            {"id": market.sellers[j].id, "role": "seller", "reason": seller_wording.reason(j)}
        )
    return tuple(out)

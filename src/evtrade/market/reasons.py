"""Why an admitted participant trades nothing: one kernel, each mechanism with its own wording.

A mechanism describes each side as :class:`Wording`: conditions checked in order (the first that
holds gives the reason) and the reason when none holds. Most of the conditions are the
mechanism's own filters on the buyer-seller pairs, applied one after the other
(:func:`pair_steps`): a participant that loses its last possible partner at a step is unmatched
for that step's reason, so the reason is the first filter that left it with nobody, computed
from the very masks the mechanism used. Buyers the exclusion rule left out
(:mod:`evtrade.market.feasibility`) are reported with the rule's reason, in the mechanism's words
when they had no partner at all (:func:`explain_exclusions`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from evtrade.model import Market

BoolArray = NDArray[np.bool_]
Rules = tuple[tuple[BoolArray, str], ...]

#: Shared wording: a seller with nothing above its reserve.
NO_SPARE = "no spare energy (s_t <= s_r)"
#: Shared wording: a buyer that asks for nothing.
NO_DEMAND = "it asks for no energy (b_max is 0)"
#: Shared wording: the welfare optimum leaves a buyer / a seller out.
OPTIMUM_SKIPS_BUYER = "the welfare optimum allocates no energy to this buyer"
OPTIMUM_SKIPS_SELLER = "the welfare optimum takes no energy from this seller"
#: Shared wording: a seller whose every possible buyer the exclusion rule left out.
PARTNERS_EXCLUDED = (
    "every buyer it could trade with was excluded (their minimum demand could not be met)"
)
#: The prefix of the exclusion rule's reasons (:mod:`evtrade.market.feasibility`).
EXCLUDED = "excluded: "


@dataclass(frozen=True)
class Wording:
    """Reasons for one side: ``rules`` as ``(mask over the side, reason)`` checked in order,
    ``otherwise`` when no mask holds."""

    rules: Rules
    otherwise: str

    def first_rule(self, k: int) -> str | None:
        """The reason of the first rule that holds for participant ``k``, or None."""
        for mask, text in self.rules:
            if mask[k]:
                return text
        return None

    def reason(self, k: int) -> str:
        text = self.first_rule(k)
        return self.otherwise if text is None else text


@dataclass(frozen=True)
class Step:
    """One of a mechanism's filters on the pairs: ``pairs`` (N, M) is True where the filter lets
    a pair through; ``buyer`` / ``seller`` say why a buyer / seller that has no pair left after
    this step trades nothing (None: this step is never that side's reason, e.g. a buyer left
    out by the exclusion rule, reported with the rule's own reason)."""

    pairs: BoolArray
    buyer: str | None
    seller: str | None


def pair_steps(steps: Sequence[Step]) -> tuple[Rules, Rules]:
    """The buyers' and the sellers' rules of a chain of filters applied one after the other:
    a participant's reason is the first step after which none of its pairs is left."""
    buyer_rules: list[tuple[BoolArray, str]] = []
    seller_rules: list[tuple[BoolArray, str]] = []
    left: BoolArray | None = None
    for step in steps:
        left = step.pairs if left is None else left & step.pairs
        if step.buyer is not None:
            buyer_rules.append((np.asarray(~left.any(axis=1)), step.buyer))
        if step.seller is not None:
            seller_rules.append((np.asarray(~left.any(axis=0)), step.seller))
    return tuple(buyer_rules), tuple(seller_rules)


def within(market: Market) -> str:
    """``" within D km"`` when the auctioneer limits the distance, else ``""`` (for wordings
    such as ``f"no seller{within(market)} asks ..."``)."""
    d = market.auctioneer.max_distance_km
    return "" if d is None else f" within {d:g} km"


def out_of_reach(
    reachable: BoolArray, market: Market, *, buyer_then: str = "", seller_then: str = ""
) -> Step:
    """The first step of every mechanism: the admitted pairs within ``max_distance_km``
    (``buyer_then`` / ``seller_then``: what the mechanism does with such a participant)."""
    d = market.auctioneer.max_distance_km
    if d is None:
        return Step(
            reachable,
            f"no seller was admitted to the round{buyer_then}",
            f"no buyer was admitted to the round{seller_then}",
        )
    return Step(
        reachable,
        f"no seller within max_distance_km ({d:g} km){buyer_then}",
        f"no buyer within max_distance_km ({d:g} km){seller_then}",
    )


def explain_exclusions(excluded: Mapping[int, str], wording: Wording) -> dict[int, str]:
    """The exclusion rule's reasons, with a buyer that had no partner at all (the rule's first
    case: its minimum demand cannot be met by anyone) told which of the mechanism's filters
    left it alone. A buyer excluded for sharing short supply keeps the rule's reason: none of
    the filters leaves it alone, so no rule of ``wording`` holds for it."""
    out: dict[int, str] = {}
    for i, text in excluded.items():
        why = wording.first_rule(i)
        out[i] = text if why is None else EXCLUDED + why
    return out


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

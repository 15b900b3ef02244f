"""Fixed-point units of the contracts, and Theorem 1 exactly as the contract computes it.

The contracts work in integers: prices in token base units (1e-18 token) per kWh, energy in
``ENERGY_SCALE`` units per kWh, the loss rate and the willingness in millionths, locations in
micro-degrees. Conversions here are exact (decimal, round half to even) and refuse what cannot be
represented, naming the field.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal

from evtrade.errors import LedgerError

#: Token base units per token (the token's 18 decimals).
TOKEN_SCALE = 10**18
#: Prices are token base units per kWh, so a price of 1 token/kWh is TOKEN_SCALE.
PRICE_SCALE = TOKEN_SCALE
ENERGY_SCALE = 10**6
RHO_SCALE = 10**6
W_SCALE = 10**6
DEGREE_SCALE = 10**6
#: l1, l2 of P1 are stored like prices.
LOSS_SCALE = PRICE_SCALE
UINT256_MAX = 2**256 - 1


def to_fixed(name: str, value: float, scale: int, *, signed: bool = False) -> int:
    """``value * scale`` as an exact integer, or a :class:`LedgerError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LedgerError(f"field {name!r} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise LedgerError(f"field {name!r} must be finite, got {value!r}")
    if value < 0 and not signed:
        raise LedgerError(f"field {name!r} must be >= 0, got {value!r}")
    out = int((Decimal(repr(value)) * scale).to_integral_value(rounding=ROUND_HALF_EVEN))
    if abs(out) > UINT256_MAX // 2:
        raise LedgerError(f"field {name!r} ({value!r}) is too large for the ledger")
    return out


def fixed_prices(v: int, v_max: int, c: int, c_min: int) -> tuple[int, int, int, bool]:
    """ETA Theorem 1 exactly as ``Market._prices`` computes it.

    Returns P*, R*, T (floor division over the common denominators 12 and 24) and whether the
    pair trades (``12 P* >= 12 R*``, exact).
    """
    num_p = v_max + 3 * c_min + 8 * v
    num_r = c_min + 3 * v_max + 8 * c
    return num_p // 12, num_r // 12, (num_p + num_r) // 24, num_p >= num_r


def payment(price: int, energy: int) -> int:
    """Tokens (base units) a buyer pays for ``energy`` units at ``price``; rounds down."""
    return price * energy // ENERGY_SCALE


def escrow(v_max: int, b_max: int) -> int:
    """The escrow a request locks: v_max * b_max, rounded up."""
    return -(-v_max * b_max // ENERGY_SCALE)


# --- Back to floats, for reports (the CLI's tables and JSON); added by helper E, issue 17 ---
# int / int is correctly rounded in Python: the nearest float to the exact quotient.


def to_kwh(energy: int) -> float:
    """Energy units (``ENERGY_SCALE`` per kWh) as kWh."""
    return energy / ENERGY_SCALE


def to_tokens(amount: int) -> float:
    """Token base units as tokens; a price (base units per kWh) as tokens per kWh."""
    return amount / TOKEN_SCALE

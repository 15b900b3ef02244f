"""JSON from untrusted sources, parsed in bounded memory, time and stack.

Every entry point that reads JSON a stranger wrote (a market file for ``evtrade clear``, a
request body of the RSU service) goes through :func:`loads_bounded`:

* the size is checked before anything is decoded;
* the nesting depth is counted by a linear scan before the parser sees the text, so a body of
  100,000 ``[`` never reaches the C parser (which recurses, and overflows the C stack once some
  import, py-evm's among them, has raised ``sys.setrecursionlimit``);
* ``NaN``, ``Infinity`` and numbers that overflow a float (``1e309``) are refused, because no
  field of evtrade means them and they break JSON replies that echo the input;
* integers longer than :data:`MAX_INT_DIGITS` digits are refused before Python converts them.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from evtrade.errors import JsonInputError

# A market file or request body nests at most 3 levels ({"buyers": [{...}]}); 32 leaves room.
MAX_DEPTH = 32
# A 10,000 x 10,000 market is about 3 MB of JSON; 16 MiB bounds the parser's memory (about 10x).
MAX_BYTES = 16 * 2**20
# Every integer evtrade reads fits in 78 digits (uint256); longer ones are refused unconverted.
MAX_INT_DIGITS = 80
# The interpreter's default; py-evm and py_ecc raise it to 100,000 when imported.
SAFE_RECURSION_LIMIT = 1000


def json_depth(data: str | bytes, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of ``data`` (brackets outside strings), stopping once it exceeds ``limit``.

    Linear in the length, constant memory; the text need not be valid JSON.
    """
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif ch in "]}" and depth > 0:
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise JsonInputError(f"{name} is not a number")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonInputError(f"{text[:20]} overflows a float")
    return value


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JsonInputError(f"an integer of {len(text)} digits is too long")
    return int(text)


def loads_bounded(
    data: str | bytes, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> Any:
    """Parse untrusted JSON, refusing what is too big, too deep or not a finite number.

    Raises
    ------
    JsonInputError
        With a one-line reason: too many bytes, nested too deep, not UTF-8, a syntax error
        (line and column), NaN / Infinity, a float overflow or an over-long integer.
    """
    size = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
    if size > max_bytes:
        raise JsonInputError(f"{size} bytes is more than the limit of {max_bytes}")
    if json_depth(data, max_depth) > max_depth:
        raise JsonInputError(f"nested deeper than {max_depth} levels")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise JsonInputError(f"not UTF-8 ({exc.reason})") from exc
    try:
        return json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except json.JSONDecodeError as exc:
        raise JsonInputError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:  # unreachable below max_depth; kept as a last line
        raise JsonInputError(f"nested deeper than {max_depth} levels") from exc


def restore_recursion_limit() -> None:
    """Undo the recursion limit that py-evm / py_ecc set on import (100,000).

    With it, a deep recursion in C code (the JSON parser, ``repr``) overflows the C stack and
    kills the process instead of raising :class:`RecursionError`. Call after importing the
    ledger; :func:`loads_bounded` does not depend on it.
    """
    if sys.getrecursionlimit() > SAFE_RECURSION_LIMIT:
        sys.setrecursionlimit(SAFE_RECURSION_LIMIT)

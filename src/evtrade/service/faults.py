"""A test hook that kills the service at a named point, so crash tests need no sleep-races.

``EVTRADE_TEST_FAULT=<when>:<what>:<n>`` makes the process SIGKILL itself

- ``sent``: right after it sends its ``n``-th transaction whose label contains ``what`` (the
  transaction may or may not make it into a block), or
- ``mined``: right after it sees the receipt of that transaction (it is on chain; nothing the
  service does next, such as re-reading the round, happens).

The labels are the client's (``reveal_for``, ``settle``, ``post_request``...). Unset, nothing is
installed. The operator of a service sets its environment, so the hook gives nobody a power
they do not have already (``kill -9``).
"""

from __future__ import annotations

import os
import signal
from typing import Any

from evtrade.errors import SettingsError
from evtrade.ledger.chain import Chain, Sent

ENV = "EVTRADE_TEST_FAULT"


def parse(spec: str) -> tuple[str, str, int]:
    """``sent:reveal:2`` -> ("sent", "reveal", 2); a malformed spec raises
    :class:`~evtrade.errors.SettingsError` (a ValueError) naming the variable."""
    parts = spec.split(":")
    if (
        len(parts) != 3
        or parts[0] not in ("sent", "mined")
        or not parts[1]
        or not parts[2].isdigit()
        or int(parts[2]) < 1
    ):
        raise SettingsError(f"{ENV}={spec!r}: expected sent|mined:<label>:<n >= 1>")
    return parts[0], parts[1], int(parts[2])


def install(chain: Chain, spec: str | None = None) -> None:
    """Wrap ``chain``'s send and wait so that the process kills itself at the point ``spec``
    (default: the environment variable) names."""
    spec = os.environ.get(ENV) if spec is None else spec
    if not spec:
        return
    when, what, n = parse(spec)
    seen = [0]
    send_data, wait, wait_status = chain.send_data, chain.wait, chain.wait_status

    def hit() -> None:
        seen[0] += 1
        if seen[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)

    def sending(*args: Any, **kwargs: Any) -> Sent:
        sent = send_data(*args, **kwargs)
        if when == "sent" and what in sent.what:
            hit()
        return sent

    def waiting(sent: Sent, *args: Any, **kwargs: Any) -> Any:
        receipt = wait(sent, *args, **kwargs)
        if when == "mined" and what in sent.what:
            hit()
        return receipt

    def waiting_status(sent: Sent, *args: Any, **kwargs: Any) -> Any:
        status = wait_status(sent, *args, **kwargs)
        if when == "mined" and what in sent.what:
            hit()
        return status

    # Instance attributes shadow the methods for every caller (the client included).
    vars(chain).update(send_data=sending, wait=waiting, wait_status=waiting_status)

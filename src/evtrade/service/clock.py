"""The RSU's clock and its round index.

The index (table ``rounds`` of :class:`~evtrade.service.store.Store`) holds each round's view
(:mod:`evtrade.service.views`); it is rebuilt from the chain at start-up and kept current by the
clock, which reveals sealed bids after the bid window and settles at the P1 optimum after the
reveal window.

One round that cannot be read, priced, revealed or settled stops nothing else: its failure is
logged, recorded in its view and retried with exponential back-off (:meth:`RoundClock._isolated`
is the one place where an unexpected error is caught).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from evtrade.errors import EvtradeError, NotFoundError
from evtrade.service.context import RsuContext
from evtrade.service.views import (
    FINAL_PHASES,
    PRICED_PHASES,
    price_offers,
    round_json,
    round_phase,
    stub_view,
)
from evtrade.settlement.rounds import settle_optimal
from evtrade.settlement.views import RoundView

log = logging.getLogger("evtrade.service")
#: Longest pause between two attempts at a round whose reveal, settlement or view keeps failing.
RETRY_CAP_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class RoundFailure:
    """A round the RSU's clock could not advance: the error, since when, when it tries again."""

    message: str
    since: float
    attempts: int
    retry_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "since": self.since,
            "attempts": self.attempts,
            "retry_at": self.retry_at,
        }


class RoundClock:
    """The round index and the clock that advances every round through its phases."""

    def __init__(self, ctx: RsuContext) -> None:
        self.ctx = ctx
        # Per round: failures with their back-off, rounds whose index entry is behind the chain
        # (bids posted since), the bid deadlines announced to drivers.
        self.failures: dict[int, RoundFailure] = {}
        self._retrying: dict[int, RoundFailure] = {}
        self._dirty: set[int] = set()
        self._next_refresh: dict[int, float] = {}
        self._announced: dict[int, int] = {}
        # Rounds of the market opened by other RSUs of the consortium: not this RSU's to index,
        # reveal or settle (docs/consortium.md); read once, then skipped.
        self._foreign: set[int] = set()

    # -- reading the index ------------------------------------------------------------------------

    def rounds(self) -> list[dict[str, Any]]:
        """Every indexed round, oldest first."""
        return self.ctx.store.rounds()

    def round(self, round_id: int) -> dict[str, Any]:
        """One indexed round; :class:`~evtrade.errors.NotFoundError` if there is none."""
        view = self.ctx.store.round(round_id)
        if view is None:
            raise NotFoundError(f"field 'round_id': no round {round_id}")
        return view

    def round_failures(self) -> dict[int, dict[str, Any]]:
        """The rounds whose last attempt failed, with the error, since when and the next try."""
        return {rid: f.to_json() for rid, f in list(self.failures.items())}

    def check_round(self, round_id: int) -> None:
        """:class:`~evtrade.errors.NotFoundError` unless the round exists on the chain."""
        if not 0 <= round_id < self.ctx.ledger.round_count():
            raise NotFoundError(f"field 'round_id': no round {round_id}")

    # -- the one isolation boundary ---------------------------------------------------------------

    @staticmethod
    def _isolated(step: Callable[[], None], failed: Callable[[Exception], None]) -> None:
        """Run ``step``; if it raises, hand the error to ``failed`` and go on.

        The clock's isolation boundary, and the only place the service catches any exception:
        one round must not stop the others nor start-up, and the clock must outlive a failed
        tick. Besides evtrade's own errors, a round can fail with whatever the chain's client
        raises (connection errors, web3's and the node's exceptions, a bug in decoding one
        round's events); each is logged with its traceback and recorded in the round's view.
        """
        try:
            step()
        except Exception as exc:  # the isolation boundary (see the docstring)
            failed(exc)

    def run(self, stop: threading.Event) -> None:
        """Tick every ``poll_seconds`` until ``stop`` is set (the service's clock thread)."""
        while not stop.wait(self.ctx.settings.poll_seconds):
            self._isolated(self.tick, lambda exc: log.error("RSU clock tick failed", exc_info=exc))

    # -- index ----------------------------------------------------------------------------------

    def rebuild_index(self) -> None:
        """Rebuild the round index from chain events (start-up, after a crash).

        A round that cannot be read or cleared keeps its last indexed view (or a stub) with its
        error recorded; the other rounds and the start-up go on, and the clock retries it.
        The bid deadlines announced to drivers are kept from the previous index.
        """
        ctx = self.ctx
        with ctx.lock:
            old = {int(v["round_id"]): v for v in ctx.store.rounds()}
            for rid, v in old.items():
                if v.get("chain_deadline") is not None and v.get("deadline") is not None:
                    self._announced[rid] = int(v["deadline"])
            views: dict[int, dict[str, Any]] = {}

            def index(rid: int) -> None:
                view = ctx.ledger.round_view(rid)
                if not self._is_mine(view):
                    return
                views[rid] = self._round_json(view)

            def failed(rid: int, exc: Exception) -> None:
                self._round_failed(rid, exc, "indexing")
                views[rid] = self._failed_view(rid, old.get(rid))

            for rid in range(ctx.ledger.round_count()):
                self._isolated(partial(index, rid), partial(failed, rid))
            ctx.store.replace_rounds(views)
            ctx.changed()

    def _is_mine(self, view: RoundView) -> bool:
        """Whether this RSU opened the round; another RSU's round is remembered as foreign."""
        if view.rsu.lower() == self.ctx.operators.rsu.address.lower():
            return True
        self._foreign.add(view.round_id)
        return False

    def refresh(self, round_id: int) -> dict[str, Any]:
        """Re-read one round from the chain into the index."""
        ctx = self.ctx
        self._dirty.discard(round_id)  # bids landing from now on mark it again
        start = time.monotonic()
        view = self._round_json(ctx.ledger.round_view(round_id))
        ctx.store.put_round(round_id, view)
        # A round of many bids costs a noticeable time to read back: refresh it because of new
        # bids at most every poll interval and at most a third of the time.
        cost = time.monotonic() - start
        self._next_refresh[round_id] = time.monotonic() + max(ctx.settings.poll_seconds, 2 * cost)
        ctx.changed()
        return view

    def opened(self, round_id: int, announced: int) -> dict[str, Any]:
        """A round this service just opened, with the bid deadline it announced: indexed now."""
        with self.ctx.lock:
            self._announced[round_id] = announced
            return self.refresh(round_id)

    def bid_posted(self, round_id: int) -> None:
        """The round's index entry is behind the chain: the clock re-reads it (coalesced)."""
        self._dirty.add(round_id)

    def _failed_view(self, round_id: int, last: dict[str, Any] | None) -> dict[str, Any]:
        """The index entry of a round that could not be read: its last view, or a stub."""
        view = dict(last) if last is not None else stub_view(round_id)
        view["error"] = self._failure_json(round_id)
        return view

    def _announced_deadline(self, view: RoundView) -> int:
        """The bid deadline drivers were told (wall clock): the on-chain one less the grace.

        Rounds this service opened keep the deadline it announced; a round it did not open (or
        whose announcement a crash lost) is taken to have been opened with today's grace.
        """
        announced = self._announced.get(view.round_id)
        if announced is not None:
            return announced
        if view.rsu.lower() == self.ctx.operators.rsu.address.lower():
            return view.deadline - self.ctx.settings.bid_grace
        return view.deadline

    def _round_json(self, view: RoundView) -> dict[str, Any]:
        announced = self._announced_deadline(view)
        deadlines = (announced, view.deadline, view.reveal_deadline, view.settle_deadline)
        phase = round_phase(view.settled, deadlines, time.time(), self.ctx.next_block_time())
        if phase == "settled":
            self.failures.pop(view.round_id, None)
        offers: list[dict[str, Any]] = []
        if phase in PRICED_PHASES:
            try:
                offers = price_offers(view)
            except (EvtradeError, ArithmeticError) as exc:  # shown without offers, with the error
                self._round_failed(view.round_id, exc, "pricing the offers")
        return round_json(
            view,
            announced=announced,
            phase=phase,
            offers=offers,
            error=self._failure_json(view.round_id),
            chosen=view.settled and self.ctx.store.confirmed("accept", view.round_id),
        )

    # -- failures of one round ------------------------------------------------------------------

    def _round_failed(self, round_id: int, exc: BaseException, doing: str) -> None:
        """Record a failure of one round: logged (with its traceback the first time and whenever
        the error changes), shown in the round's JSON, retried with exponential back-off."""
        message = f"{doing}: {type(exc).__name__}: {exc}"
        now = time.time()
        last = self.failures.get(round_id) or self._retrying.get(round_id)
        attempts = 1 if last is None else last.attempts + 1
        delay = min(RETRY_CAP_SECONDS, self.ctx.settings.poll_seconds * 2.0 ** min(attempts, 16))
        failure = RoundFailure(
            message=message,
            since=now if last is None else last.since,
            attempts=attempts,
            retry_at=now + delay,
        )
        self.failures[round_id] = failure
        if last is None or last.message != message:
            log.error(
                "round %d: %s (attempt %d, retrying in %.1f s)",
                round_id,
                message,
                attempts,
                delay,
                exc_info=exc,
            )
        else:
            log.warning(
                "round %d: still failing, attempt %d (retrying in %.1f s): %s",
                round_id,
                attempts,
                delay,
                message,
            )

    def _failure_json(self, round_id: int) -> dict[str, Any] | None:
        failure = self.failures.get(round_id)
        return None if failure is None else failure.to_json()

    # -- the clock --------------------------------------------------------------------------------

    def reveal_if_due(self, round_id: int) -> None:
        """Reveal the round's sealed bids if its bid window is over and some are still sealed."""
        ctx = self.ctx
        view = ctx.ledger.round_view(round_id)
        if view.settled or ctx.next_block_time() <= view.deadline:
            return
        if any(q.value is None for q in view.requests) or any(
            p.value is None for p in view.replies
        ):
            ctx.ledger.reveal_sealed(ctx.operators.rsu, round_id)

    def tick(self) -> None:
        """The RSU's clock: reveal sealed bids after the window, settle at the P1 optimum after
        the reveal window (unless the buyer already chose an offer), and keep the index current.

        Each round is advanced on its own, under the lock for that round only: a round whose
        reveal, settlement or view fails is logged with its traceback, recorded (its JSON and the
        dashboard show the error and since when) and retried with exponential back-off, while
        the other rounds go on.
        """
        ctx = self.ctx
        views = ctx.store.rounds()
        self._index_new_rounds({int(v["round_id"]) for v in views})
        for view in views:
            rid = int(view["round_id"])
            if view.get("phase") in FINAL_PHASES and rid not in self._dirty:
                continue
            failure = self.failures.get(rid)
            if failure is not None and time.time() < failure.retry_at:
                continue
            try:
                self._isolated(
                    partial(self._advance_locked, rid, view, failed=failure is not None),
                    partial(self._advance_failed, rid, view),
                )
            finally:
                self._retrying.pop(rid, None)

    def _index_new_rounds(self, known: set[int]) -> None:
        """Index rounds this RSU opened by other means (another tool with its key, a previous
        run); other RSUs' rounds are theirs (:meth:`_is_mine`)."""
        ctx = self.ctx
        for rid in range(ctx.ledger.round_count()):
            if rid in known or rid in self._foreign:
                continue
            if time.time() < getattr(self.failures.get(rid), "retry_at", 0.0):
                continue
            self._isolated(partial(self._index_new, rid), partial(self._index_failed, rid))

    def _index_new(self, rid: int) -> None:
        with self.ctx.lock:
            if self._is_mine(self.ctx.ledger.round_view(rid)):
                self.refresh(rid)

    def _index_failed(self, rid: int, exc: Exception) -> None:
        self._round_failed(rid, exc, "indexing")
        with self.ctx.lock:
            self.ctx.store.put_round(rid, self._failed_view(rid, None))
            self.ctx.changed()

    def _advance_locked(self, rid: int, view: dict[str, Any], *, failed: bool) -> None:
        with self.ctx.lock:
            self._advance(rid, view, failed=failed)

    def _advance_failed(self, rid: int, view: dict[str, Any], exc: Exception) -> None:
        """The round could not be advanced: recorded, and its last view shown with the error."""
        self._round_failed(rid, exc, f"advancing from phase {view.get('phase')!r}")
        with self.ctx.lock, contextlib.suppress(sqlite3.Error):
            last = self.ctx.store.round(rid)
            self.ctx.store.put_round(rid, self._failed_view(rid, last or view))
            self.ctx.changed()

    def _advance(self, rid: int, view: dict[str, Any], *, failed: bool) -> None:
        """One step of the clock for one round: reveal, settle or refresh, whatever is due."""
        ctx = self.ctx
        now = ctx.next_block_time()
        if view.get("chain_deadline") is None:  # a stub: the round could not be read yet
            self.refresh(rid)
            return
        acted = False
        bids = view["requests"] + view["replies"]
        revealing = view["chain_deadline"] < now <= view["reveal_deadline"]
        if revealing and not all(b["revealed"] for b in bids):
            self.reveal_if_due(rid)
            acted = True
        # Past the settlement window the contract refuses; the refresh below marks it expired.
        settling = view["reveal_deadline"] + 1 < now <= view["settle_deadline"]
        if settling and view.get("phase") != "settled":
            settle_optimal(ctx.ledger, ctx.operators.rsu, rid)
            acted = True
        deadlines = (
            view["deadline"],
            view["chain_deadline"],
            view["reveal_deadline"],
            view["settle_deadline"],
        )
        stale = round_phase(False, deadlines, time.time(), now) != view.get("phase")
        behind = rid in self._dirty and time.monotonic() >= self._next_refresh.get(rid, 0.0)
        if acted or stale or behind or failed:
            # What was due went through; a failure of the refresh itself continues the record.
            previous = self.failures.pop(rid, None)
            if previous is not None:
                self._retrying[rid] = previous
            self.refresh(rid)

"""Experiment sweeps: a grid of round mechanisms x market sizes x options x replicates.

A sweep file (TOML or JSON, docs/sweeps.md) names the grid; :func:`load_sweep` validates it into
a :class:`Sweep`, whose :meth:`Sweep.runs` lists one :class:`Run` per point of the grid in a fixed
order. A run is pure: :func:`run_one` draws its market from its own seed and clears it, so where
and when it runs (this process, a local Dask cluster, any Dask cluster) never changes its record.

Seeds: the market of a run depends on the sweep's root seed, its size and its replicate only,
``SeedSequence(root, spawn_key=(n_buyers, n_sellers, replicate))``, which is the child that
``SeedSequence(root).spawn(...)`` reaches along that path (``spawn(n_buyers + 1)[n_buyers]``,
then ``.spawn(n_sellers + 1)[n_sellers]``, then ``.spawn(replicate + 1)[replicate]``). Every
mechanism and every option of one size and replicate clears the same market (common random
numbers), and adding a size or a mechanism to a sweep leaves the other runs' markets alone.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from evtrade import __version__
from evtrade.errors import EvtradeError, MarketError, SweepError
from evtrade.market._blas import single_blas_thread
from evtrade.market.mechanisms import get, names, run_mechanism
from evtrade.model.files import read_document
from evtrade.sim.scenarios import ScenarioSpec, random_market

#: Bounds of a sweep file: a hostile file is refused before anything runs.
MAX_RUNS = 1_000_000
MAX_REPLICATES = 100_000
MAX_PARTICIPANTS = 5_000
MAX_LIST = 1_000
MAX_SEED = 2**63 - 1

#: Columns that vary between two computations of one run (not compared, not in the key).
TIMING_COLUMNS = ("time_market_s", "time_clear_s", "worker")
#: Scenario fields a sweep may set (fixed for the whole sweep; sizes come from ``sizes``).
_INTERVALS = tuple(
    f.name
    for f in fields(ScenarioSpec)
    if f.name not in ("n_buyers", "n_sellers") and f.type == "tuple[float, float]"
)
_NUMBERS = ("auctioneer_v_min", "auctioneer_c_max", "l1", "l2", "radius_km", "max_distance_km")

Scalar = bool | int | float | str


@dataclass(frozen=True)
class Run:
    """One point of a sweep's grid: everything its record depends on."""

    mechanism: str
    n_buyers: int
    n_sellers: int
    params: tuple[tuple[str, Scalar], ...]
    replicate: int
    root_seed: int
    scenario: tuple[tuple[str, Any], ...] = ()
    version: str = __version__

    def inputs(self) -> dict[str, Any]:
        """The inputs as plain data, the source of :attr:`key`."""
        return {
            "mechanism": self.mechanism,
            "n_buyers": self.n_buyers,
            "n_sellers": self.n_sellers,
            "params": dict(self.params),
            "scenario": dict(self.scenario),
            "root_seed": self.root_seed,
            "replicate": self.replicate,
            "version": self.version,
        }

    @property
    def key(self) -> str:
        """SHA-256 of the inputs' canonical JSON (sorted keys, no spaces), 32 hex digits."""
        return hashlib.sha256(canonical_json(self.inputs()).encode()).hexdigest()[:32]

    def seed(self) -> np.random.SeedSequence:
        """The run's seed: ``SeedSequence(root).spawn`` along (n_buyers, n_sellers, replicate)."""
        return np.random.SeedSequence(
            self.root_seed, spawn_key=(self.n_buyers, self.n_sellers, self.replicate)
        )


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file."""

    name: str
    root_seed: int
    replicates: int
    mechanisms: tuple[str, ...]
    sizes: tuple[tuple[int, int], ...]
    #: per mechanism: option name -> the values it takes in the grid
    params: Mapping[str, Mapping[str, tuple[Scalar, ...]]]
    scenario: tuple[tuple[str, Any], ...] = ()

    def runs(self) -> Iterator[Run]:
        """Every run in grid order: mechanism, size, options (cartesian, sorted), replicate."""
        for mech in self.mechanisms:
            grid = self.params.get(mech, {})
            keys = sorted(grid)
            for n, m in self.sizes:
                for values in itertools.product(*(grid[k] for k in keys)):
                    for rep in range(self.replicates):
                        yield Run(
                            mechanism=mech,
                            n_buyers=n,
                            n_sellers=m,
                            params=tuple(zip(keys, values, strict=True)),
                            replicate=rep,
                            root_seed=self.root_seed,
                            scenario=self.scenario,
                        )

    def size(self) -> int:
        """How many runs :meth:`runs` yields."""
        per_size = 0
        for mech in self.mechanisms:
            per_size += int(np.prod([len(v) for v in self.params.get(mech, {}).values()]))
        return per_size * len(self.sizes) * self.replicates

    def param_types(self) -> dict[str, str]:
        """Every option of the grid and its column type (``float``, ``int``, ``bool``, ``str``)."""
        types: dict[str, str] = {}
        for grid in self.params.values():
            for k, values in grid.items():
                types[k] = type(values[0]).__name__
        return dict(sorted(types.items()))


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no spaces: one text per value (the input hash's source)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


# --- the sweep file ---------------------------------------------------------------------------


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file (TOML or JSON, bounded like a market file).

    Raises
    ------
    SweepError
        One line naming the file and the key at fault.
    """
    data = read_sweep_file(path)
    try:
        return sweep_from_dict(data)
    except SweepError as exc:
        raise SweepError(f"{path}: {exc}") from None


def read_sweep_file(path: str | Path) -> Any:
    """A sweep file's plain data (TOML or JSON, bounded like a market file); raises
    :class:`SweepError`."""
    try:
        return read_document(path, what="sweep")
    except MarketError as exc:
        raise SweepError(str(exc)) from None


def sweep_from_dict(data: Any) -> Sweep:
    """Validate plain data (a parsed sweep file) into a :class:`Sweep`; raises :class:`SweepError`
    naming the key."""
    top = _table(data, "")
    _only(top, ("sweep", "params", "scenario"), "")
    head = _table(top.get("sweep"), "sweep")
    _only(head, ("name", "seed", "replicates", "mechanisms", "sizes"), "sweep")
    name = head.get("name", "sweep")
    if not isinstance(name, str) or not 0 < len(name) <= 100:
        raise SweepError("sweep.name: must be a text of 1 to 100 characters")
    seed = _integer(head.get("seed"), "sweep.seed", 0, MAX_SEED)
    replicates = _integer(head.get("replicates", 1), "sweep.replicates", 1, MAX_REPLICATES)
    mechanisms = _mechanisms(head.get("mechanisms"))
    sizes = _sizes(head.get("sizes"))
    params = _params(top.get("params", {}), mechanisms)
    scenario = _scenario(top.get("scenario", {}))
    sweep = Sweep(
        name=name,
        root_seed=seed,
        replicates=replicates,
        mechanisms=mechanisms,
        sizes=sizes,
        params=params,
        scenario=scenario,
    )
    if sweep.size() > MAX_RUNS:
        raise SweepError(f"sweep: {sweep.size()} runs, more than the limit of {MAX_RUNS}")
    return sweep


def _table(value: Any, where: str) -> dict[str, Any]:
    if value is None and where:
        raise SweepError(f"{where}: missing table")
    if not isinstance(value, dict):
        raise SweepError(f"{where or 'sweep file'}: must be a table")
    return value


def _only(table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for k in table:
        if k not in allowed:
            name = f"{where}.{k}" if where else str(k)
            raise SweepError(f"{name}: unknown key; expected one of {', '.join(allowed)}")


def _integer(value: Any, where: str, lo: int, hi: int) -> int:
    if value is None:
        raise SweepError(f"{where}: missing")
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise SweepError(f"{where}: must be an integer from {lo} to {hi}, got {value!r}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_LIST:
        raise SweepError(f"{where}: must be a list of 1 to {MAX_LIST} values")
    return value


def _mechanisms(value: Any) -> tuple[str, ...]:
    if value is None:
        raise SweepError("sweep.mechanisms: missing")
    round_names = names("round")
    out: list[str] = []
    for item in _list(value, "sweep.mechanisms"):
        if item not in round_names:
            raise SweepError(
                f"sweep.mechanisms: unknown {item!r}; choose from {', '.join(round_names)}"
            )
        if item in out:
            raise SweepError(f"sweep.mechanisms: {item!r} given twice")
        out.append(item)
    return tuple(out)


def _sizes(value: Any) -> tuple[tuple[int, int], ...]:
    if value is None:
        raise SweepError("sweep.sizes: missing")
    out: list[tuple[int, int]] = []
    for k, item in enumerate(_list(value, "sweep.sizes")):
        where = f"sweep.sizes[{k}]"
        if not isinstance(item, list) or len(item) != 2:
            raise SweepError(f"{where}: must be [n_buyers, n_sellers]")
        size = (
            _integer(item[0], f"{where} n_buyers", 1, MAX_PARTICIPANTS),
            _integer(item[1], f"{where} n_sellers", 1, MAX_PARTICIPANTS),
        )
        if size in out:
            raise SweepError(f"{where}: {list(size)} given twice")
        out.append(size)
    return tuple(out)


def _params(value: Any, mechanisms: tuple[str, ...]) -> dict[str, dict[str, tuple[Scalar, ...]]]:
    out: dict[str, dict[str, tuple[Scalar, ...]]] = {}
    types: dict[str, str] = {}
    for mech, grid in _table(value, "params").items():
        where = f"params.{mech}"
        if mech not in mechanisms:
            raise SweepError(f"{where}: {mech!r} is not in sweep.mechanisms")
        m = get(mech)
        hints = {} if m.params is None else {f.name: str(f.type) for f in fields(m.params)}
        out[mech] = {}
        for opt, values in _table(grid, where).items():
            at = f"{where}.{opt}"
            if opt not in hints:
                takes = ", ".join(hints) or "no options"
                raise SweepError(f"{at}: the {mech} mechanism does not take it (it takes {takes})")
            items = values if isinstance(values, list) else [values]
            cleaned = tuple(_value(v, hints[opt], at) for v in _list(items, at))
            kind = type(cleaned[0]).__name__
            same = all(type(v).__name__ == kind for v in cleaned)
            if not same or types.setdefault(opt, kind) != kind:
                raise SweepError(f"{at}: every value of an option must have one type")
            if len(set(cleaned)) != len(cleaned):
                raise SweepError(f"{at}: a value is given twice")
            out[mech][opt] = cleaned
        _check_options(m, out[mech], where)
    return out


def _value(v: Any, hint: str, where: str) -> Scalar:
    """A grid value as the option's type (an integer for a float option becomes a float, so
    ``1`` and ``1.0`` are one run)."""
    if isinstance(v, bool):
        if "bool" not in hint:
            raise SweepError(f"{where}: {v!r} is not a {hint}")
        return v
    if isinstance(v, int | float):
        if not np.isfinite(v):
            raise SweepError(f"{where}: {v!r} is not a finite number")
        if hint.startswith("float"):
            return float(v)
        if hint.startswith("int") and isinstance(v, int):
            return v
        raise SweepError(f"{where}: {v!r} is not a {hint}")
    if isinstance(v, str) and hint.startswith("str") and len(v) <= 100:
        return v
    raise SweepError(f"{where}: {v!r} is not a {hint}")


def _check_options(mech: Any, grid: Mapping[str, tuple[Scalar, ...]], where: str) -> None:
    """Every combination through the mechanism's own checks (its params' ``__post_init__``)."""
    if mech.params is None:
        return
    keys = sorted(grid)
    for values in itertools.islice(itertools.product(*(grid[k] for k in keys)), MAX_LIST):
        try:
            mech.params(**dict(zip(keys, values, strict=True)))
        except EvtradeError as exc:
            raise SweepError(f"{where}: {exc}") from None


def _scenario(value: Any) -> tuple[tuple[str, Any], ...]:
    table = _table(value, "scenario")
    _only(table, (*_INTERVALS, *_NUMBERS), "scenario")
    out: dict[str, Any] = {}
    for k, v in table.items():
        where = f"scenario.{k}"
        if k in _INTERVALS:
            ok = (
                isinstance(v, list)
                and len(v) == 2
                and all(_finite(x) for x in v)
                and float(v[0]) <= float(v[1])
            )
            if not ok:
                raise SweepError(f"{where}: must be [low, high], two finite numbers, low <= high")
            out[k] = [float(v[0]), float(v[1])]
        else:
            if not _finite(v) or float(v) < 0:
                raise SweepError(f"{where}: must be a finite number >= 0")
            out[k] = float(v)
    return tuple(sorted(out.items()))


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and bool(np.isfinite(x))


# --- one run ----------------------------------------------------------------------------------


def scenario_spec(run: Run) -> ScenarioSpec:
    """The run's :class:`ScenarioSpec`: the defaults, the sweep's ``[scenario]``, its size."""
    fixed: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in run.scenario}
    return ScenarioSpec(**fixed).scaled(run.n_buyers, run.n_sellers)


def run_one(run: Run) -> dict[str, Any]:
    """Draw the run's market from its seed, clear it, and return its flat record.

    A mechanism that refuses the market or fails to solve it is a record too (``error`` says why,
    the outputs are null): one bad point never stops a sweep. Single-threaded BLAS, so the record
    is the same whichever process computes it. Raises :class:`SweepError` when this process's
    evtrade differs from the version in the run's inputs (a cluster worker with other code).
    """
    if run.version != __version__:
        raise SweepError(
            f"worker runs evtrade {__version__}, the sweep was started with {run.version}"
        )
    t0 = time.perf_counter()
    market = random_market(scenario_spec(run), np.random.default_rng(run.seed()))
    t1 = time.perf_counter()
    record: dict[str, Any] = {"key": run.key, **_inputs(run)}
    outputs: dict[str, Any] = dict.fromkeys(OUTPUT_COLUMNS)
    try:
        with single_blas_thread():
            result = run_mechanism(market, run.mechanism, **dict(run.params))
    except EvtradeError as exc:
        outputs["error"] = f"{type(exc).__name__}: {exc}"[:500]
    else:
        solver = result.solver
        converged = solver.get("converged")
        outputs.update(
            welfare=float(result.welfare),
            total_volume=float(result.total_volume),
            total_payment=float(result.total_payment),
            gains_from_trade=float(result.gains_from_trade),
            price=None if result.price is None else float(result.price),
            satisfaction_buyers=result.satisfaction.get("buyers"),
            satisfaction_sellers=result.satisfaction.get("sellers"),
            satisfaction_mean=result.satisfaction.get("mean"),
            pairs_traded=int(np.count_nonzero(result.volume_matrix > 0)),
            rejected=len(result.rejected),
            unmatched=len(result.unmatched),
            solver_method=str(solver.get("method")),
            solver_iterations=_int_or_none(solver.get("iterations")),
            solver_converged=None if converged is None else bool(converged),
        )
    t2 = time.perf_counter()
    record.update(outputs)
    record.update(
        time_market_s=t1 - t0,
        time_clear_s=t2 - t1,
        worker=f"{socket.gethostname()}:{os.getpid()}",
    )
    return record


def _inputs(run: Run) -> dict[str, Any]:
    return {
        "mechanism": run.mechanism,
        "n_buyers": run.n_buyers,
        "n_sellers": run.n_sellers,
        "replicate": run.replicate,
        "root_seed": run.root_seed,
        "version": run.version,
        "scenario": canonical_json(dict(run.scenario)),
        **{f"param_{k}": v for k, v in run.params},
    }


def _int_or_none(x: Any) -> int | None:
    return None if x is None or isinstance(x, bool) else int(x)


#: The outputs of a record, in column order (null when the run failed; ``error`` says why).
OUTPUT_COLUMNS = (
    "error",
    "welfare",
    "total_volume",
    "total_payment",
    "gains_from_trade",
    "price",
    "satisfaction_buyers",
    "satisfaction_sellers",
    "satisfaction_mean",
    "pairs_traded",
    "rejected",
    "unmatched",
    "solver_method",
    "solver_iterations",
    "solver_converged",
)

__all__ = [
    "MAX_RUNS",
    "OUTPUT_COLUMNS",
    "TIMING_COLUMNS",
    "Run",
    "Sweep",
    "canonical_json",
    "load_sweep",
    "read_sweep_file",
    "run_one",
    "scenario_spec",
    "sweep_from_dict",
]

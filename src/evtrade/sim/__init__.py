"""Scenarios, experiments and the papers' figures, from the project's own runs."""

from evtrade.sim.scenarios import ScenarioSpec, random_market

__all__ = ["ScenarioSpec", "random_market"]

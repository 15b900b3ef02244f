"""Settings refuse what the market model or the contract refuses, with a message naming the setting,
so that a bad value stops `evtrade serve` at start-up instead of every round that clears later."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from evtrade.errors import SettingsError
from evtrade.model import Auctioneer
from evtrade.service.settings import Settings, settings_problem


def problem(**values: object) -> str:
    with pytest.raises(ValidationError) as info:
        Settings.model_validate(values)
    return settings_problem(info.value)


@pytest.mark.parametrize(
    ("values", "setting", "words"),
    [
        # The model's own checks (its wording is the model's: only the setting's name is fixed).
        ({"l1": 0}, "l1", "'l1'"),  # eq. (16) needs a strictly convex cost
        ({"l1": -0.1}, "l1", "'l1'"),
        ({"l1": 1e100}, "l1", "'l1'"),
        ({"l2": -1}, "l2", "'l2'"),
        ({"v_floor": -0.5}, "v_floor", "'v_floor'"),
        ({"c_ceiling": -1}, "c_ceiling", "'c_ceiling'"),
        # The contract's rules.
        ({"v_floor": 2.0, "c_ceiling": 1.0}, "v_floor", "<= 'c_ceiling'"),
        ({"l2": 1e-30}, "l2", "rounds to 0"),  # stored as 0 on chain: not what was asked for
        ({"max_distance_km": 1e-4}, "max_distance_km", "rounds to 0"),  # 0 m means unlimited
        ({"v_floor": float("nan")}, "v_floor", "finite"),
        ({"c_ceiling": float("inf")}, "c_ceiling", "finite"),
        ({"max_distance_km": 0}, "max_distance_km", "greater than 0"),
        ({"t_limit": 0}, "t_limit", "greater than or equal to 1"),
        ({"t_reveal": 0}, "t_reveal", "greater than or equal to 1"),
        ({"t_settle": 0}, "t_settle", "greater than or equal to 1"),
        ({"t_limit": 10**9}, "t_limit", "less than or equal to"),
        ({"bid_grace": -1}, "bid_grace", "greater than or equal to 0"),
        ({"rsu_lat": 91}, "rsu_lat", "less than or equal to 90"),
        ({"rsu_lon": -181}, "rsu_lon", "greater than or equal to -180"),
        ({"poll_seconds": 0}, "poll_seconds", "greater than 0"),
        ({"poll_seconds": float("inf")}, "poll_seconds", "finite"),
        ({"port": 0}, "port", "greater than or equal to 1"),
        ({"l_one": 1}, "l_one", "Extra inputs"),
    ],
)
def test_refused_settings_name_the_setting(
    values: dict[str, object], setting: str, words: str
) -> None:
    message = problem(**values)
    assert message.startswith(f"setting {setting!r}"), message
    assert words in message, message


def test_every_accepted_auctioneer_is_one_the_model_accepts() -> None:
    s = Settings(v_floor=0, c_ceiling=0, l1=1e-6, l2=0, max_distance_km=0.5)
    Auctioneer(v_min=s.v_floor, c_max=s.c_ceiling, l1=s.l1, l2=s.l2, max_distance_km=0.5)
    default = Settings()
    Auctioneer(v_min=default.v_floor, c_max=default.c_ceiling, l1=default.l1, l2=default.l2)


def test_environment_and_file_errors_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVTRADE_L1", "0")
    with pytest.raises(SettingsError, match=r"^setting 'l1': "):
        Settings.load()
    monkeypatch.delenv("EVTRADE_L1")
    file = tmp_path / "rsu.toml"
    file.write_text("v_floor = 3.0\nc_ceiling = 2.0\n")
    with pytest.raises(SettingsError, match=r"^setting 'v_floor' \(3.0\) must be <= 'c_ceiling'"):
        Settings.load(file)
    file.write_text("t_limit = [")
    with pytest.raises(SettingsError, match="settings file"):
        Settings.load(file)
    file.write_text("t_limit = 30\nbid_grace = 5\n")
    assert Settings.load(file).bid_grace == 5

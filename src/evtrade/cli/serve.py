"""``evtrade serve``: the RSU service (REST API, the drivers' pages, the RSU dashboard)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from evtrade.cli import render
from evtrade.cli.options import ChainUrlOption


def serve(
    settings_file: Annotated[
        Path | None, typer.Option("--settings", help="TOML settings file (EVTRADE_* env vars win).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Service and chain data.")
    ] = None,
    chain_url: ChainUrlOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Start the RSU service: REST API (/docs), the drivers' pages and the RSU dashboard."""
    import uvicorn

    from evtrade.service.api import create_app
    from evtrade.service.settings import Settings

    # The options win over the settings file, as the EVTRADE_* variables they set do.
    for name, value in (
        ("DATA_DIR", data_dir),
        ("CHAIN_URL", chain_url),
        ("HOST", host),
        ("PORT", port),
    ):
        if value is not None:
            os.environ[f"EVTRADE_{name}"] = str(value)
    settings = Settings.load(settings_file)
    render.serving(settings.host, settings.port, settings.chain_url, settings.data_dir)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")

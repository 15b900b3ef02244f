"""``evtrade serve``: the RSU service (REST API, the drivers' pages, the RSU dashboard).

The address is taken before anything else (a busy port is a one-line error, exit code 1), and the
URL is printed once the service listens: never a URL and then a failure.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evtrade.cli import render
from evtrade.cli.boundary import fail
from evtrade.cli.options import DEFAULT_DATA_DIR, ChainUrlOption

if TYPE_CHECKING:
    import uvicorn

#: The service's defaults (:class:`evtrade.service.settings.Settings`), for ``--help``: the
#: service is imported only when it starts (~0.15 s on every other command). tests/test_cli.py
#: checks that they agree.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def _help(what: str, variable: str, default: object) -> str:
    """An option's help: what it sets, what it wins over, its default."""
    return f"{what}; wins over EVTRADE_{variable} and the settings file. \\[default: {default}]"


def serve(
    settings_file: Annotated[
        Path | None,
        typer.Option("--settings", help="TOML settings file (EVTRADE_* env vars win)."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", help=_help("Service and chain data", "DATA_DIR", DEFAULT_DATA_DIR)
        ),
    ] = None,
    chain_url: ChainUrlOption = None,
    host: Annotated[
        str | None,
        typer.Option(help=_help("Address to listen on", "HOST", DEFAULT_HOST)),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help=_help("Port to listen on", "PORT", DEFAULT_PORT)),
    ] = None,
    deployment: Annotated[
        Path | None,
        typer.Option(
            "--deployment",
            help=_help(
                "Consortium mode: the authority's deployment record (with --chain-url and "
                "--rsu-key; docs/consortium.md)",
                "DEPLOYMENT",
                "none: development mode, the service deploys and is the authority",
            ),
        ),
    ] = None,
    rsu_key: Annotated[
        Path | None,
        typer.Option(
            "--rsu-key",
            help=_help(
                "Consortium mode: this RSU's keystore (password: $EVTRADE_RSU_KEY_PASSWORD or "
                "a prompt)",
                "RSU_KEY",
                "none",
            ),
        ),
    ] = None,
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
        ("DEPLOYMENT", deployment),
        ("RSU_KEY", rsu_key),
    ):
        if value is not None:
            os.environ[f"EVTRADE_{name}"] = str(value)
    settings = Settings.load(settings_file)
    if settings.deployment is not None:  # consortium mode: the key and the chain checked first
        from evtrade.ledger.keystore import password
        from evtrade.service.rsu import RSU_KEY_PASSWORD, check_consortium

        os.environ[RSU_KEY_PASSWORD] = password(
            RSU_KEY_PASSWORD,
            prompt=lambda text: str(typer.prompt(text, hide_input=True)),
            what="RSU's keystore",
        )
        check_consortium(settings)
    listener = listen(settings.host, settings.port)
    app = create_app(settings)
    server = _announcing_server(
        uvicorn.Config(app, log_level="warning"),
        lambda: render.serving(settings.host, settings.port, settings.chain_url, settings.data_dir),
    )
    server.run(sockets=[listener])


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (uvicorn listens on it), or a one-line error when the
    address cannot be had: a port in use, an unknown host, no permission."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        fail(f"--host {host}: cannot resolve it ({exc.strerror})")
    sock = socket.socket(family, kind, proto)
    # As uvicorn binds: a restarted service may reuse a port in TIME_WAIT, never one listening.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        fail(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another service on "
            "that port? choose one with --port)"
        )
    return sock


def _announcing_server(config: uvicorn.Config, announce: Callable[[], None]) -> uvicorn.Server:
    """uvicorn's server, calling ``announce`` once it has started and listens (not before: a
    failed start-up prints no address)."""
    import uvicorn

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                announce()

    return AnnouncingServer(config)

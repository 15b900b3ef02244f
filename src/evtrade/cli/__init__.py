"""The ``evtrade`` command line: commands only, the work lives in the library.

Layout (issue 17, in the manner of fastapi-cli):

- :mod:`~evtrade.cli.clear`: ``clear`` and ``montecarlo`` (the market library);
- :mod:`~evtrade.cli.chain`: ``chain run``, ``audit`` and ``demo`` (the settlement use cases on
  the ledger);
- :mod:`~evtrade.cli.dsm`: ``schedule`` (a day of EV charging, DSM) and ``reproduce dsm``;
- :mod:`~evtrade.cli.reproduce`, :mod:`~evtrade.cli.serve`, :mod:`~evtrade.cli.bench`;
- :mod:`~evtrade.cli.render`: everything printed (tables, lines, JSON, progress);
- :mod:`~evtrade.cli.boundary`: the one error boundary, around every command: an error becomes
  ``error: ...`` on stderr and exit code 1;
- :mod:`~evtrade.cli.options`: choices and options several commands share.
"""

from __future__ import annotations

import typer

from evtrade.cli import authority, bench, chain, clear, dsm, dv2g, reproduce, serve, sweep, tangle
from evtrade.cli.options import LIMITS_HELP, Command, Group

app = typer.Typer(
    help="Peer-to-peer electricity trading between electric vehicles.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=Group,
)
reproduce_app = typer.Typer(
    help="Regenerate a paper's figures from the project's own runs.", cls=Group
)
app.add_typer(reproduce_app, name="reproduce")
chain_app = typer.Typer(
    help="Trading rounds on the ledger (embedded chain or a JSON-RPC node).", cls=Group
)
app.add_typer(chain_app, name="chain")

app.command(cls=Command, epilog=LIMITS_HELP)(clear.clear)
app.command(cls=Command)(clear.montecarlo)
app.command(cls=Command)(dsm.schedule)
app.command(cls=Command)(dv2g.dv2g)
reproduce_app.command("eta", cls=Command)(reproduce.reproduce_eta)
reproduce_app.command("babg", cls=Command)(reproduce.reproduce_babg)
reproduce_app.command("dsm", cls=Command)(dsm.reproduce_dsm)
reproduce_app.command("dv2g", cls=Command)(reproduce.reproduce_dv2g)
app.command(cls=Command)(chain.demo)
chain_app.command("run", cls=Command, epilog=LIMITS_HELP)(chain.chain_run)
app.command(cls=Command)(chain.audit)
app.command(cls=Command)(serve.serve)
app.command(cls=Command)(bench.bench)
app.command(cls=Command)(sweep.sweep)
app.command("sweep-summary", cls=Command)(sweep.sweep_summary)
authority.register(app)
app.command(cls=Command)(tangle.tangle)


def main() -> None:  # pragma: no cover - console entry point
    """The console entry point (``evtrade``, ``python -m evtrade``)."""
    app()


__all__ = ["app", "main"]

"""``python -m evtrade``: the same as the ``evtrade`` command."""

from evtrade.cli import main

main()

"""Default values that several layers share, each defined once.

A market file, the RSU service's settings, a ledger round and the simulated scenarios all fall
back on these when they are not given a value.
"""

from __future__ import annotations

#: Cost factors of eq. (16), l1 (quadratic, > 0) and l2 (linear, >= 0): ETA leaves them open,
#: BABG's simulations use 0.0025 and 0.005.
DEFAULT_L1 = 0.0025
DEFAULT_L2 = 0.005

#: Jinhua city centre (ETA's experimental city, Fig. 3), degrees north and east: the simulated
#: markets (:mod:`evtrade.sim`), hence ``evtrade demo``'s vehicles, are placed around it.
JINHUA = (29.0790, 119.6474)

#: Where the RSU stands when its settings do not say: where the demo's market is (Jinhua), so
#: that ``make demo`` then ``make serve`` show the dashboard's map around its vehicles.
DEFAULT_RSU_LAT, DEFAULT_RSU_LON = JINHUA

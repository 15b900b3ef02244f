"""Default values that several layers share, each defined once.

A market file, the RSU service's settings, a ledger round and the simulated scenarios all fall
back on these when they are not given a value.
"""

from __future__ import annotations

#: Cost factors of eq. (16), l1 (quadratic, > 0) and l2 (linear, >= 0): ETA leaves them open,
#: BABG's simulations use 0.0025 and 0.005.
DEFAULT_L1 = 0.0025
DEFAULT_L2 = 0.005

#: Where the RSU stands when its settings do not say (Gothenburg), degrees north and east.
DEFAULT_RSU_LAT = 57.7089
DEFAULT_RSU_LON = 11.9746

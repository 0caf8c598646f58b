"""compact-proofs' untrusted generator: training, proof search, sweeps and reports.

Importing it pins the environment variables that make torch's training bit-reproducible on every
x86-64 CPU (generator/portable.py); they must be set before torch loads.
"""

from compact_proofs.generator import portable as _portable

_portable.pin()

__version__ = "0.1.0"

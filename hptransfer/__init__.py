"""hptransfer: tune on a small dense proxy, train wide and sparse with transferred HPs (SμPar)."""

__version__ = "0.1.0"

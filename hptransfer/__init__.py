"""hptransfer: tune on a small dense proxy, train wide and sparse with transferred HPs (SμPar)."""

__version__ = "0.1.0"


def load_model(folder, device="cpu"):
    """The trained target in ``folder`` (see :func:`hptransfer.target.load_model`)."""
    from hptransfer.target.artifact import load_model as _load_model

    return _load_model(folder, device)

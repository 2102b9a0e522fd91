"""hptransfer: tune on a small dense proxy, train wide and sparse with transferred HPs (SμPar)."""

__version__ = "0.1.0"


def load_model(folder, device="cpu"):
    """A target's model from its folder or one of its checkpoint folders (see
    :func:`hptransfer.distributed.load_model`)."""
    from hptransfer.distributed.artifact import load_model as _load_model

    return _load_model(folder, device)


_OWN = ("parametrize", "describe", "param_groups", "build_optimizer")


def __getattr__(name):
    """``hptransfer.parametrize`` and the rest of :mod:`hptransfer.own`, imported on first use."""
    if name in _OWN:
        from hptransfer import own

        return getattr(own, name)
    raise AttributeError(f"module 'hptransfer' has no attribute {name!r}")

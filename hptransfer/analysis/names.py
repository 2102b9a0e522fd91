"""How tables and figures name, order and colour the parameterizations, and label HPs.

One place for both, so a README table and a figure of the same study agree, and a rule set
with CompleteP's depth rules (``supar+completep``) is told apart from its width rules alone.
"""

from __future__ import annotations

from collections.abc import Iterable

from hptransfer.errors import ConfigError
from hptransfer.param import PARAMETERIZATIONS, parameterization

WIDTH_RULES = {name: p.label for name, p in PARAMETERIZATIONS.items()}  # the papers' order
# Per width rule: its colour alone, with CompleteP (α = 1), with any other depth exponent.
COLORS = {
    "sp": ("tab:blue", "tab:cyan", "tab:gray"),
    "mup": ("tab:orange", "tab:red", "tab:brown"),
    "supar": ("tab:green", "tab:purple", "tab:olive"),
}

# Axis labels of the searched HPs and the losses.
HP_LABELS = {
    "lr": "base learning rate η",
    "init_std": "base init std σ",
    "alpha_in": "input multiplier α_in",
    "alpha_out": "output multiplier α_out",
    "alpha_attn": "attention logit multiplier α_attn",
    "weight_decay": "weight decay",
}
METRIC_LABELS = {
    "val_loss": "validation loss (nats)",
    "train_loss": "train loss (nats)",
}


def _depth_alpha(name: str) -> float | None:
    """The depth exponent of a registered name (0: no depth rules); None if not registered."""
    try:
        return parameterization(name).depth_alpha
    except ConfigError:
        return None


def param_label(name: str) -> str:
    """``μP``, ``SμPar + CompleteP``, ``μP + CompleteP α=0.5``; an unknown name as it is."""
    alpha = _depth_alpha(name)
    if alpha is None:
        return name
    width_label = WIDTH_RULES[name.partition("+")[0]]
    if alpha == 0:
        return width_label
    return f"{width_label} + CompleteP" + ("" if alpha == 1 else f" α={alpha:g}")


def param_color(name: str) -> str | None:
    """The rule set's colour (None for an unknown name: matplotlib's cycle picks one)."""
    alpha = _depth_alpha(name)
    if alpha is None:
        return None
    alone, completep, other = COLORS[name.partition("+")[0]]
    return alone if alpha == 0 else completep if alpha == 1 else other


def param_key(name: str) -> tuple[int, float, str]:
    """Sort key: by width rules (SP, μP, SμPar), then depth exponent; unknown names last."""
    alpha = _depth_alpha(name)
    if alpha is None:
        return len(WIDTH_RULES), 0.0, name
    return list(WIDTH_RULES).index(name.partition("+")[0]), alpha, name


def param_order(names: Iterable[str]) -> list[str]:
    """The distinct ``names`` in table and legend order."""
    return sorted(set(names), key=param_key)

"""How figures colour the parameterizations and label HPs and losses.

Their names, labels and order are the registry's (:func:`hptransfer.param.param_label`,
:func:`hptransfer.param.param_order`); a rule set with CompleteP's depth rules
(``supar+completep``) gets a colour of its own, apart from its width rules alone.
"""

from __future__ import annotations

from hptransfer.param.rules import registered

# Per width rule: its colour alone, with CompleteP (α = 1), with any other depth exponent.
COLORS = {
    "sp": ("tab:blue", "tab:cyan", "tab:gray"),
    "mup": ("tab:orange", "tab:red", "tab:brown"),
    "supar": ("tab:green", "tab:purple", "tab:olive"),
    "supar-init": ("tab:pink", "hotpink", "lightpink"),
    "supar-lr": ("goldenrod", "darkgoldenrod", "khaki"),
}

# Axis labels of the searched HPs and the losses.
HP_LABELS = {
    "lr": "base learning rate η",
    "init_std": "base init std σ",
    "alpha_in": "input multiplier α_in",
    "alpha_out": "output multiplier α_out",
    "alpha_attn": "attention logit multiplier α_attn",
    "lr_emb_ratio": "embedding and readout LR ratio κ = η_emb/η",
    "weight_decay": "weight decay",
}
METRIC_LABELS = {
    "val_loss": "validation loss (nats)",
    "train_loss": "train loss (nats)",
}


def param_color(name: str) -> str | None:
    """The rule set's colour (None for an unknown name: matplotlib's cycle picks one)."""
    entry = registered(name)
    if entry is None:
        return None
    alone, completep, other = COLORS[name.partition("+")[0]]
    alpha = entry.depth_alpha
    return alone if alpha == 0 else completep if alpha == 1 else other

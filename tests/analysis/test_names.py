"""Names, order and colours of the parameterizations in tables and figures."""

from hptransfer.analysis.names import param_color
from hptransfer.param import param_label, param_order

NAMES = ["supar+completep", "mup+completep=0.5", "mup", "sp", "mup+completep", "supar"]


def test_depth_ruled_names_are_labelled_and_ordered() -> None:
    assert [param_label(n) for n in param_order([*NAMES, "mup"])] == [
        "SP",
        "μP",
        "μP + CompleteP α=0.5",
        "μP + CompleteP",
        "SμPar",
        "SμPar + CompleteP",
    ]


def test_each_rule_set_has_its_own_colour() -> None:
    """A figure comparing SP with SμPar + CompleteP (the joint transfer) must tell them apart."""
    colors = [param_color(n) for n in NAMES]
    assert None not in colors and len(set(colors)) == len(NAMES)
    assert param_color("supar+completep=0") == param_color("supar")  # α = 0: no depth rules


def test_an_unknown_name_is_shown_as_it_is_and_sorted_last() -> None:
    assert param_label("custom") == "custom" and param_color("custom") is None
    assert param_order(["custom", "sp"]) == ["sp", "custom"]

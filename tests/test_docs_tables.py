"""docs/parameterizations.md's width-and-density and budget tables against the code's rules.

Each cell is read as a formula in m_d, m_rho (m_D, m_B, γ, β), evaluated at a shape where no two
rules coincide, and compared with ``hptransfer.param.rules``: the page cannot drift from the
code it documents."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from hptransfer.param import PARAMETERIZATIONS, Multipliers, Role
from hptransfer.param.base import BudgetMultipliers
from hptransfer.param.rules import BUDGET_RULES, fitted_rule

PAGE = Path(__file__).resolve().parents[1] / "docs" / "parameterizations.md"
M = Multipliers(width=3.0, density=0.2)
BUDGET = BudgetMultipliers(tokens=5.0, batch=0.3)
GAMMA, BETA = 0.7, 0.4
COLUMNS = ("sp", "mup", "supar", "supar-init", "supar-lr")  # the table's columns, in order
RULES = {"init var": "init_var", "Adam LR": "adam_lr", "SGD LR": "sgd_lr", "output": "output"}
# Formula text to Python: the page's symbols and operators.
SYMBOLS = (
    ("m_rho", "mr"), ("m_d", "md"), ("m_D", "mD"), ("m_B", "mB"), ("α_in", "1"), ("α_out", "1"),
    ("·", "*"), ("^", "**"), ("−", "-"), ("√", "sqrt"), ("γ", "g"), ("β", "b"), ("×", ""),
)  # fmt: skip


def value(cell: str) -> float:
    """A cell's formula at M, BUDGET, GAMMA and BETA (notes in parentheses or after a comma
    dropped)."""
    text = re.sub(r"\s*\((experimental|with a warning)\)|,.*$", "", cell).strip()
    for symbol, python in SYMBOLS:
        text = text.replace(symbol, python)
    names = {"md": M.width, "mr": M.density, "mD": BUDGET.tokens, "mB": BUDGET.batch}
    return eval(text, {"sqrt": math.sqrt, "g": GAMMA, "b": BETA, **names})


def table(heading: str) -> list[list[str]]:
    """The rows (cells stripped) of the first table under ``heading``, the header row dropped."""
    section = PAGE.read_text().split(f"\n{heading}\n", 1)[1]
    lines = [line for line in section.split("\n\n", 2)[1].splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def width_rows() -> list[tuple[str, str, str, str]]:
    """(role, rule, parameterization, cell) of the width-and-density table."""
    rows, role = [], ""
    for cells in table("## Width and density"):
        role = cells[0] or role
        rows += [(role, cells[1], p, cell) for p, cell in zip(COLUMNS, cells[2:], strict=True)]
    return rows


@pytest.mark.parametrize(("role", "rule", "name", "cell"), width_rows())
def test_each_width_and_density_rule_is_the_codes(role: str, rule: str, name: str, cell: str):
    p = PARAMETERIZATIONS[name]
    if role == "attention logits":
        assert p.mup_attention == ("√d₀/d_head" in cell)
    elif rule == "weight decay":
        assert cell == "none" and not p.rule(Role(role)).decay
    else:
        assert value(cell) == pytest.approx(getattr(p.rule(Role(role)), RULES[rule])(M))


def test_the_width_table_covers_every_role_and_every_rule_set() -> None:
    rows = width_rows()
    assert {role for role, *_ in rows} == {r.value for r in Role} | {"attention logits"}
    assert {name for _, _, name, _ in rows} == set(PARAMETERIZATIONS)


def test_the_budget_table_is_the_codes() -> None:
    rows = {cells[0].split()[0].strip("`"): cells[1:] for cells in table("## The training budget")}
    assert set(rows) == set(BUDGET_RULES)
    for name, cells in rows.items():
        rule = fitted_rule(GAMMA, BETA) if name == "fitted" else BUDGET_RULES[name]
        assert rule is not None
        factors = (rule.lr, rule.weight_decay, rule.eps, rule.one_minus_beta)
        for cell, factor in zip(cells, factors, strict=True):
            assert value(cell) == pytest.approx(factor(BUDGET)), (name, cell)


def test_a_wrong_cell_would_fail() -> None:
    """The reader is not vacuous: μP's hidden LR written as SμPar's differs from the code."""
    hidden = PARAMETERIZATIONS["mup"].rule(Role.HIDDEN).adam_lr(M)
    assert value("1/(m_d·m_rho)") != pytest.approx(hidden) == value("1/m_d")
    assert value("× √(m_B/m_D)") == pytest.approx(math.sqrt(0.3 / 5.0))

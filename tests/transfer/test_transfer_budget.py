"""``transfer --to ...,tokens=N,batch=B``: the target trains for its own budget, the base HPs
moved by the budget rule; bad budgets are one-line errors."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from fitted_sweep import (
    BATCH_STEPS,
    BETA,
    GAMMA,
    OPTIMUM_LOG2_LR,
    TOKENS_PER_STEP,
    optimum_log2_lr,
    write_sweep,
)

from hptransfer.cli.main import main
from hptransfer.cli.targets import parse_targets
from hptransfer.models import describe
from hptransfer.transfer import Request, load_source, target_runs

PROXY_TOKENS = 10 * TOKENS_PER_STEP  # TINY_SPEC: 10 steps × batch 4 × 8 tokens


def transfer(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["transfer", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def horizons_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("horizons") / "results"
    return write_sweep(root, horizons=(10, 30, 90), seeds=(0, 1, 2))


def test_no_budget_and_the_proxys_budget_are_todays_runs(sweep_dir: Path) -> None:
    source = load_source(sweep_dir)
    today = target_runs(source, Request(parse_targets("width=64,density=0.5"), "supar"))
    same = f"width=64,density=0.5,tokens={PROXY_TOKENS},batch=4"
    assert target_runs(source, Request(parse_targets(same), "supar")) == today
    assert target_runs(source, Request(parse_targets(same), "supar", budget_rule="none")) == today


def test_completedp_moves_the_base_hps_then_width_rules_apply(sweep_dir: Path) -> None:
    source = load_source(sweep_dir)
    to = f"width=64,density=0.5,tokens={16 * PROXY_TOKENS},batch=8"  # m_D = 16, m_B = 2
    (run,) = target_runs(source, Request(parse_targets(to), "supar"))
    factor = math.sqrt(2 / 16)
    assert run.hps.lr == pytest.approx(2.0**OPTIMUM_LOG2_LR * factor)
    assert (run.train.steps, run.train.warmup_steps, run.data.batch_size) == (80, 16, 8)
    assert run.train.eps == pytest.approx(1e-8 / factor)
    assert run.train.betas == pytest.approx((1 - 0.1 / 8, 1 - 0.05 / 8))
    hidden = [p.lr for p in describe(run) if p.role.value == "hidden"]
    assert hidden == pytest.approx([2.0**OPTIMUM_LOG2_LR * factor / (4 * 0.5)] * 4)


def test_regret_grid_centres_on_each_targets_moved_lr(sweep_dir: Path) -> None:
    source = load_source(sweep_dir)
    targets = parse_targets(f"width=32;width=32,tokens={4 * PROXY_TOKENS}")
    request = Request(targets, "supar", regret=True)
    runs = target_runs(source, request)
    centres = sorted(run.hps.lr for run in runs.transferred())
    assert centres == pytest.approx([2.0**OPTIMUM_LOG2_LR * 0.5, 2.0**OPTIMUM_LOG2_LR])
    assert len(runs) == 2 * 5


def test_fitted_rule_extrapolates_the_horizon_line(horizons_dir: Path) -> None:
    source = load_source(horizons_dir)
    held_out = 270 * TOKENS_PER_STEP
    request = Request(parse_targets(f"width=32,tokens={held_out}"), "supar", budget_rule="fitted")
    (run,) = target_runs(source, request)
    assert run.train.steps == 270
    assert math.log2(run.hps.lr) == pytest.approx(optimum_log2_lr(270), abs=0.15)
    (line,) = [r for r in source.fit.budget if r["parameterization"] == "supar"]
    assert line["gamma"] == pytest.approx(GAMMA, abs=0.05)


@pytest.fixture(scope="module")
def batches_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("batches") / "results"
    return write_sweep(root, batches=(4, 2, 8), seeds=(0, 1, 2))


def test_fitted_rule_extrapolates_the_batch_line_at_the_proxys_tokens(batches_dir: Path) -> None:
    source = load_source(batches_dir)
    tokens = BATCH_STEPS * TOKENS_PER_STEP  # the proxy's: 16 steps × 4 rows × 8 tokens
    targets = parse_targets(f"width=32,tokens={tokens},batch=16;width=32,tokens={tokens}")
    request = Request(targets, "supar", budget_rule="fitted")
    at_16, at_4 = target_runs(source, request)
    assert (at_16.train.steps, at_16.data.batch_size, at_4.data.batch_size) == (4, 16, 4)
    assert math.log2(at_16.hps.lr) == pytest.approx(optimum_log2_lr(4, 16), abs=0.15)
    assert math.log2(at_16.hps.lr / at_4.hps.lr) == pytest.approx(2 * BETA, abs=0.1)
    assert (at_16.train.eps, at_16.train.betas) == (at_4.train.eps, at_4.train.betas)


def test_fitted_rule_needs_the_line_of_what_the_target_moves(
    sweep_dir: Path, batches_dir: Path, tmp_path: Path, capsys
) -> None:
    longer = f"width=32,tokens={4 * BATCH_STEPS * TOKENS_PER_STEP}"
    code, _, err = transfer(
        capsys, "--from", str(batches_dir), "--to", longer, "--budget-rule", "fitted", "--dry-run"
    )
    assert code == 2 and "at least 3 horizons (train.steps: [..]); sweep 'batches' has 1" in err
    two = write_sweep(tmp_path / "results", batches=(4, 8), seeds=(0, 1, 2))
    for folder, found in ((sweep_dir, "'tiny' has 1"), (two, "'batches' has 2")):
        code, out, err = transfer(
            capsys, "--from", str(folder), "--to", "width=32,batch=8", "--budget-rule", "fitted",
            "--steps", str(BATCH_STEPS // 2 if folder == two else 5), "--dry-run",
        )  # fmt: skip
        assert (code, out, err.count("\n")) == (2, "", 1), err
        assert f"at least 3 batch sizes (data.batch_size: [..]); sweep {found} at the base" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "width=32,tokens=31"], r"tokens=31 is fewer than one batch \(4 rows × 8 tokens"),
        (["--to", "width=32,tokens=320,steps=4"], "give tokens or steps, not both"),
        (["--to", "width=32,batch=0"], "--to batch must be a positive integer"),
        (["--to", "width=32,tokens=1.5"], r"bad --to value tokens='1\.5'"),
        (
            ["--to", "width=32,steps=20", "--budget-rule", "fitted"],
            r"budget rule fitted needs a proxy sweep over at least 3 horizons \(train\.steps: "
            r"\[\.\.\]\); sweep 'tiny' has 1",
        ),
        (["--to", "width=32,batch=5", "--workers", "2"], r"batch size \(5\) must be divisible"),
    ],
)
def test_bad_budgets_are_one_line_exit_2(sweep_dir: Path, capsys, args, message) -> None:
    code, out, err = transfer(capsys, "--from", str(sweep_dir), *args, "--dry-run")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and re.search(message, err), err


def test_dry_run_says_the_budget_and_its_factors(sweep_dir: Path, capsys) -> None:
    code, out, _ = transfer(
        capsys, "--from", str(sweep_dir), "--to", f"width=32,tokens={4 * PROXY_TOKENS},batch=8",
        "--dry-run",
    )  # fmt: skip
    assert code == 0
    assert "budget: 20 steps × batch 8 (1,280 tokens) against the proxy's 10 steps × batch 4" in out
    assert "m_D = 4, m_B = 2; rule completedp: η × 0.7071, weight decay × 0.7071" in out
    assert "WARNING" not in out


def test_plan_shows_the_budget_factors(capsys) -> None:
    code = main(["plan", "sweeps/proxy.yaml", "--to", "width=128,steps=600,batch=32"])
    out = capsys.readouterr().out
    assert code == 0 and "m_D = 8, m_B = 2; rule completedp: η × 0.5" in out


def test_regret_of_each_budget_rule_is_kept(horizons_dir: Path, capsys) -> None:
    """`transfer --regret` once per budget rule at one target: both regrets stay stored."""
    from hptransfer.analysis.regret import read_regret

    target = ["--to", f"width=32,tokens={4 * PROXY_TOKENS}", "--regret"]
    for rule in ("completedp", "fitted"):
        code, out, err = transfer(
            capsys, "--from", str(horizons_dir), *target, "--budget-rule", rule
        )
        assert code == 0, err
        assert re.search(rf"40 steps, {rule} +[\d.]+ +[\d.]+", out)
    stored = read_regret(horizons_dir).set_index("budget_rule")
    assert sorted(stored.index) == ["completedp", "fitted"]
    assert stored["max_steps"].eq(40).all() and stored["seeds"].eq(1).all()
    assert stored.loc["completedp", "transferred_lr"] != stored.loc["fitted", "transferred_lr"]

"""``hptransfer transfer``: plan and estimate, memory refusal, one-line errors, a real run."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import pandas as pd
import pytest
from fitted_sweep import OPTIMUM_LOG2_INIT_STD, OPTIMUM_LOG2_LR, write_sweep

from hptransfer.analysis import results
from hptransfer.analysis.plots import TRANSFER_COLUMNS, transfer_curve_figure, write_plots
from hptransfer.cli.main import main
from hptransfer.cli.targets import parse_targets
from hptransfer.models import describe
from hptransfer.param import Role
from hptransfer.store.folder import TRANSFER_CURVES_FILE, TRANSFER_FILE
from hptransfer.transfer import Request, load_source, target_runs


def transfer(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["transfer", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_target_runs_carry_the_fitted_base_hps(sweep_dir: Path) -> None:
    source = load_source(sweep_dir)
    request = Request(parse_targets("width=4096,density=0.125"), "supar", compare=("sp",))
    supar, sp = target_runs(source, request)
    assert (supar.parameterization, sp.parameterization) == ("supar", "sp")
    assert supar.hps == sp.hps and supar.hps.lr == pytest.approx(2.0**OPTIMUM_LOG2_LR)
    assert (supar.model.width, supar.model.density, supar.base.width) == (4096, 0.125, 16)
    assert supar.train == source.spec.train and supar.data == source.spec.data
    hidden = [p.lr for p in describe(supar) if p.role is Role.HIDDEN]
    assert hidden == pytest.approx([2.0**OPTIMUM_LOG2_LR / (256 * 0.125)] * 4)  # η/(m_d·m_rho)


def test_target_runs_carry_the_joint_optimum_of_a_joint_search(tmp_path: Path) -> None:
    source = load_source(write_sweep(tmp_path / "results", joint=True))
    assert set(source.fit.joint) == {"supar"}
    (run,) = target_runs(source, Request(parse_targets("width=64"), "supar"))
    assert run.hps.lr == pytest.approx(2.0**OPTIMUM_LOG2_LR, rel=0.01)
    assert run.hps.init_std == pytest.approx(2.0**OPTIMUM_LOG2_INIT_STD, rel=0.01)
    flags = {hp: est.flag for hp, est in source.fit.base_hps["supar"].items()}
    assert flags["lr"] == flags["init_std"] == "ok"
    paths = write_plots(source.sweep_dir, source.fit)
    assert source.sweep_dir / "plots" / "joint_base_supar.png" in paths


def test_target_runs_carry_the_fitted_alpha_attn(tmp_path: Path, capsys) -> None:
    """fit.json's α_attn reaches every target and baseline: logits × α_attn × the rule."""
    import json

    from hptransfer.models import forward_scales

    folder = write_sweep(tmp_path / "results")
    doc = json.loads((folder / "fit.json").read_text())
    assert doc["base_hps"]["supar"]["alpha_attn"]["flag"] == "fixed"
    fitted = {"value": 2.0, "log2": 1.0, "ci95": [1.8, 2.2], "flag": "ok"}
    doc["base_hps"]["supar"]["alpha_attn"] = fitted
    (folder / "fit.json").write_text(json.dumps(doc))
    request = Request(parse_targets("width=64"), "supar", compare=("sp",))
    supar, sp = target_runs(load_source(folder), request)
    assert supar.hps.alpha_attn == sp.hps.alpha_attn == 2.0
    d_head, d_0 = supar.model.head_dim, 16 // supar.model.heads
    assert forward_scales(supar).attention == pytest.approx(2.0 * d_0**0.5 / d_head)
    assert forward_scales(sp).attention == pytest.approx(2.0 / d_head**0.5)
    code, out, _ = transfer(capsys, "--from", str(folder), "--to", "width=64", "--dry-run")
    assert code == 0 and "alpha_attn 2^1 (ok)" in out and "(α_attn 2)" in out


def test_target_runs_carry_the_fitted_kappa(tmp_path: Path, capsys) -> None:
    """fit.json's κ reaches every target and baseline: embedding and readout LR κ·η (times
    the rule), hidden LRs as without it; a fit.json without κ (fixed at 1) reads as 1."""
    import json

    from hptransfer.models import describe

    folder = write_sweep(tmp_path / "results")
    doc = json.loads((folder / "fit.json").read_text())
    assert "lr_emb_ratio" not in doc["base_hps"]["supar"]
    request = Request(parse_targets("width=64,density=0.25"), "supar", compare=("sp",))
    plain = target_runs(load_source(folder), request)
    doc["base_hps"]["supar"]["lr_emb_ratio"] = {
        "value": 4.0,
        "log2": 2.0,
        "ci95": None,
        "flag": "ok",
    }
    (folder / "fit.json").write_text(json.dumps(doc))
    runs = target_runs(load_source(folder), request)
    assert [r.hps.lr_emb_ratio for r in plain] == [1.0, 1.0] and [
        r.hps.lr_emb_ratio for r in runs
    ] == [4.0, 4.0]
    for before, after in zip(plain, runs, strict=True):
        for a, b in zip(describe(before), describe(after), strict=True):
            kappa = 4.0 if a.role.value in ("embedding", "readout") else 1.0
            assert b.lr == pytest.approx(kappa * a.lr)
    code, out, _ = transfer(capsys, "--from", str(folder), "--to", "width=64", "--dry-run")
    assert code == 0 and "lr_emb_ratio 2^2 (ok)" in out


def test_target_runs_use_the_fitted_readout_init(tmp_path: Path, capsys) -> None:
    """fit.json's base_settings reach the targets; a fit without them keeps the spec's."""
    import json

    folder = write_sweep(tmp_path / "results")
    doc = json.loads((folder / "fit.json").read_text())
    assert doc["base_settings"]["supar"] == {"readout_zero_init": False}
    request = Request(parse_targets("width=64"), "supar", compare=("sp",))
    for settings, expected in (({"readout_zero_init": True}, True), (None, False)):
        if settings is None:
            del doc["base_settings"]
        else:
            doc["base_settings"]["supar"] = settings
        (folder / "fit.json").write_text(json.dumps(doc))
        runs = target_runs(load_source(folder), request)
        assert [r.model.readout_zero_init for r in runs] == [expected, expected]
    doc["base_settings"] = {"supar": {"readout_zero_init": True}}
    (folder / "fit.json").write_text(json.dumps(doc))
    code, out, _ = transfer(capsys, "--from", str(folder), "--to", "width=64", "--dry-run")
    assert code == 0 and "readout_zero_init true" in out
    assert re.search(r"head\.weight +readout +\S+ +1 +0 ", out)  # init std 0: zero init


def test_regret_grid_is_five_half_octave_lrs_per_parameterization_and_seed(sweep_dir: Path):
    source = load_source(sweep_dir)
    request = Request(
        parse_targets("width=32"), "supar", compare=("sp",), seeds=(0, 1), regret=True
    )
    runs = target_runs(source, request)
    assert len(runs) == 2 * 5 * 2
    for param in ("supar", "sp"):
        lrs = sorted({math.log2(r.hps.lr) for r in runs if r.parameterization == param})
        assert lrs == pytest.approx([OPTIMUM_LOG2_LR + k for k in (-1, -0.5, 0, 0.5, 1)])
    assert len(runs.transferred()) == 4


def test_dry_run_prints_plan_and_estimate_fast(sweep_dir: Path, capsys) -> None:
    start = time.perf_counter()
    code, out, err = transfer(
        capsys, "--from", str(sweep_dir), "--to", "width=4096,density=0.125", "--dry-run"
    )
    assert code == 0, err
    assert time.perf_counter() - start < 15
    assert re.search(r"blocks\.0\.attn\.qkv\.weight +hidden +12288×4096 +0\.125", out)
    assert re.search(r"memory +≈ \d+\.\d GiB \(weights [\d.]+, grads", out)
    assert re.search(r"time +≈ [\d.]+ m?s/step", out) and "estimate per run" in out
    memory = r"memory: available RAM \(MemAvailable\) is [\d.]+ GiB, enough for \d+ run"
    assert re.search(memory, out)
    assert "WARNING" not in out and "dry run: nothing trained" in out
    assert not (sweep_dir / TRANSFER_FILE).exists()


def test_other_budget_is_said_loudly_once(sweep_dir: Path, capsys) -> None:
    code, out, _ = transfer(
        capsys, "--from", str(sweep_dir), "--to", "width=64;width=32,density=0.5",
        "--steps", "5", "--batch-size", "2", "--compare", "sp", "--dry-run",
        "--budget-rule", "none",
    )  # fmt: skip
    assert code == 0
    warnings = [line for line in out.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "5 steps × batch 2" in warnings[0]
    assert "10 steps × batch 4" in warnings[0] and "do not transfer" in warnings[0]
    assert "4 run(s) would be stored" in out


def test_target_too_big_for_memory_is_refused_with_the_estimate(sweep_dir: Path, capsys) -> None:
    code, _, err = transfer(capsys, "--from", str(sweep_dir), "--to", "width=32768,density=0.5")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("hptransfer: error: target width 32768")
    assert re.search(r"needs ≈ \d+\.\d GiB .* available RAM", err)
    assert "GPU" in err and "--address" in err and "--batch-size" in err
    assert not (sweep_dir / TRANSFER_FILE).exists()


def test_cluster_runs_are_not_checked_against_local_memory(sweep_dir: Path, capsys) -> None:
    code, out, _ = transfer(
        capsys, "--from", str(sweep_dir), "--to", "width=32768,density=0.5",
        "--address", "127.0.0.1:1", "--dry-run",
    )  # fmt: skip
    assert code == 0
    assert "memory: not checked here; the runs go to the Ray cluster at 127.0.0.1:1" in out


def test_regret_grid_too_big_for_memory_is_refused(sweep_dir: Path, capsys) -> None:
    code, _, err = transfer(
        capsys, "--from", str(sweep_dir), "--to", "width=32768,density=0.5", "--regret",
        "--seeds", "0,1,2",
    )  # fmt: skip
    assert code == 2
    assert err.count("\n") == 1 and "--regret would train 15 runs like it" in err
    assert not (sweep_dir / TRANSFER_FILE).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "size=64"], "unknown --to key 'size'"),
        (["--to", "width=32,density=0"], "--to density must be in (0, 1]"),
        (["--to", "width=33"], "must be divisible by model.heads"),
        (["--to", "width=32", "--compare", "spp"], "unknown parameterization 'spp'"),
        (["--to", "width=32", "--seeds", "a"], "--seeds must be comma-separated integers"),
    ],
)
def test_bad_input_is_one_line_exit_2(sweep_dir: Path, capsys, args, message) -> None:
    code, out, err = transfer(capsys, "--from", str(sweep_dir), *args)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("hptransfer: error:") and message in err


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root, "no fit.json under"),
        (lambda root: write_sweep(root, fit=False), "has no fit.json yet"),
        (lambda root: write_sweep(root, diverged=True, fit=False), "trials diverged"),
    ],
    ids=["no-results", "no-fit", "all-diverged"],
)
def test_missing_or_unusable_sweep_is_one_line_exit_2(tmp_path: Path, capsys, make, message):
    where = make(tmp_path)
    source = ["--results", str(where)] if where == tmp_path else ["--from", str(where)]
    code, out, err = transfer(capsys, *source, "--to", "width=32")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and message in err
    assert "run `hptransfer fit` first" in err or "nothing to fit" in err


# -------------------------------------------------------------------- a real run on Ray

TARGET = ["--to", "width=32,density=0.25", "--compare", "sp"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fitted tiny sweep whose 2× wider, 1/4-dense target was trained with an SP baseline."""
    return write_sweep(tmp_path_factory.mktemp("trained") / "results")


def test_real_transfer_trains_target_and_baseline(trained: Path, capsys) -> None:
    code, out, err = transfer(capsys, "--from", str(trained), *TARGET)
    assert code == 0, err
    runs = pd.read_parquet(trained / TRANSFER_FILE)
    assert sorted(runs["parameterization"]) == ["sp", "supar"]
    assert set(runs["status"]) == {"completed"} and runs["val_loss"].notna().all()
    assert (runs["width"].tolist(), runs["density"].tolist()) == ([32, 32], [0.25, 0.25])
    curves = pd.read_parquet(trained / TRANSFER_CURVES_FILE)
    assert set(curves["trial_id"]) == set(runs["trial_id"])
    assert len(pd.read_parquet(trained / "trials.parquet")) == 28  # the sweep's, untouched
    row = r"32 × 0\.25, depth 1 +1 +[\d.]+ +[\d.]+ +[+-]\d+\.\d\d%"
    paired = r"[+-]\d\.\d{3} \(1 seed: no interval\)"
    assert re.search(rf"supar gain vs sp +supar − sp, 95% CI *\n{row} +{paired}", out)
    figure = transfer_curve_figure(
        results.read_curves(trained, TRANSFER_CURVES_FILE),
        results.read_table(trained / TRANSFER_FILE, TRANSFER_COLUMNS),
        "val_loss",
    )
    assert figure.axes

    # Stored runs are not trained again: the same command reports them without Ray.
    start = time.perf_counter()
    code, again, _ = transfer(capsys, "--from", str(trained), *TARGET)
    assert code == 0 and time.perf_counter() - start < 10
    assert again.splitlines()[-3:] == out.splitlines()[-3:]


def test_a_deeper_target_keeps_the_proxy_depth_as_its_base(sweep_dir: Path, capsys) -> None:
    source = load_source(sweep_dir)
    (run,) = target_runs(source, Request(parse_targets("depth=4"), "supar"))
    assert (run.model.depth, run.base.depth, run.multipliers.depth) == (4, 1, 4.0)
    code, out, _ = transfer(capsys, "--from", str(sweep_dir), "--to", "depth=4", "--dry-run")
    assert code == 0 and "m_L" not in out  # supar has no depth rules: only the note
    assert "note: depth 4 differs from the proxy's 1; supar transfers" in out

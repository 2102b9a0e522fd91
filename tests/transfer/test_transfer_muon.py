"""``transfer`` from a proxy tuned with ``train.optimizer: muon``: the targets, the regret grid
and the budget rules keep Muon; real runs on Ray Tune (``--regret``) and on Ray Train (2 DDP
workers); FSDP2 with Muon refused in one line."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pandas as pd
import pytest
from fitted_sweep import OPTIMUM_LOG2_LR, TOKENS_PER_STEP, write_sweep
from fitted_sweep import transfer_cli as transfer

from hptransfer.cli.targets import parse_targets
from hptransfer.models import describe
from hptransfer.runtime.identity import run_key
from hptransfer.store.folder import TRANSFER_FILE
from hptransfer.transfer import Request, load_source, target_runs

ETA = 2.0**OPTIMUM_LOG2_LR


@pytest.fixture(scope="module")
def muon_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sweep(tmp_path_factory.mktemp("muon") / "results", optimizer="muon")


def test_targets_and_the_regret_grid_train_with_muon(muon_sweep: Path) -> None:
    """SμPar's hidden matrices get η (no 1/(m_d·m_rho): docs/muon.md) at every regret LR."""
    request = Request(parse_targets("width=64,density=0.25"), "supar", compare=("sp",), regret=True)
    runs = target_runs(load_source(muon_sweep), request)
    assert len(runs) == 2 * 5 and {run.train.optimizer for run in runs} == {"muon"}
    for run in runs:
        hidden = [(p.lr, p.optimizer) for p in describe(run) if p.role.value == "hidden"]
        assert hidden == [(pytest.approx(run.hps.lr), "muon")] * 4
    lrs = sorted({math.log2(run.hps.lr) for run in runs})
    assert lrs == pytest.approx([OPTIMUM_LOG2_LR + k for k in (-1, -0.5, 0, 0.5, 1)])
    (supar,) = [r for r in runs.transferred() if r.parameterization == "supar"]
    adamw = dataclasses.replace(supar, train=dataclasses.replace(supar.train, optimizer="adamw"))
    assert run_key(supar) != run_key(adamw)


def test_completedp_moves_muons_momentum_like_adams_first_moment(muon_sweep: Path) -> None:
    to = f"width=32,tokens={160 * TOKENS_PER_STEP},batch=8"  # m_D = 16, m_B = 2
    (run,) = target_runs(load_source(muon_sweep), Request(parse_targets(to), "supar"))
    factor = math.sqrt(2 / 16)
    assert run.hps.lr == pytest.approx(ETA * factor)
    assert run.train.betas[0] == pytest.approx(1 - 0.1 / 8)
    assert run.train.muon_momentum == pytest.approx(1 - 0.05 / 8)
    muon = [p for p in describe(run) if p.optimizer == "muon"]
    assert muon and all(p.eps == 1e-7 for p in muon)  # Newton–Schulz's ε: no budget factor
    assert all(p.lr == pytest.approx(ETA * factor) for p in muon)


def test_dry_run_plan_names_each_parameters_optimizer(muon_sweep: Path, capsys) -> None:
    code, out, err = transfer(capsys, "--from", str(muon_sweep), "--to", "width=32", "--dry-run")
    assert code == 0, err
    assert re.search(r"name .* lr .* optimizer", out)
    assert re.search(r"blocks\.0\.ffn\.up\.weight +hidden .* muon", out)
    assert re.search(r"head\.weight +readout .* adamw", out)


def test_regret_on_ray_tune_trains_every_lr_with_muon(muon_sweep: Path, capsys) -> None:
    code, out, err = transfer(
        capsys, "--from", str(muon_sweep), "--to", "width=32,density=0.5", "--regret"
    )
    assert code == 0, err
    runs = pd.read_parquet(muon_sweep / TRANSFER_FILE)
    assert len(runs) == 5 and set(runs["optimizer"]) == {"muon"}
    assert set(runs["status"]) == {"completed"} and runs["val_loss"].notna().all()
    assert "regret" in out


def test_a_ray_train_target_trains_with_muon(tmp_path: Path, capsys) -> None:
    sweep = write_sweep(Path("/tmp") / tmp_path.name / "results", optimizer="muon")
    args = ["--from", str(sweep), "--to", "width=32,density=0.25", "--workers", "2"]
    code, _, err = transfer(capsys, *args)
    assert code == 0, err
    (row,) = pd.read_parquet(sweep / TRANSFER_FILE).to_dict("records")
    assert (row["optimizer"], row["status"]) == ("muon", "completed")
    assert math.isfinite(row["val_loss"])


def test_fsdp_with_muon_is_refused_in_one_line(muon_sweep: Path, capsys) -> None:
    args = ["--to", "width=32", "--workers", "2", "--strategy", "fsdp"]
    code, out, err = transfer(capsys, "--from", str(muon_sweep), *args)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "muon with target.strategy fsdp is not supported yet" in err

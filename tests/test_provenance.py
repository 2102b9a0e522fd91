"""Provenance: ``hptransfer --version``, the fields every run records, the version's one home."""

from __future__ import annotations

import importlib.metadata
import math
from pathlib import Path

import pytest
import torch

import hptransfer
from hptransfer import provenance
from hptransfer.cli.main import main
from hptransfer.runtime.identity import point_id, trial_row
from hptransfer.train import train

ROOT = Path(__file__).parents[1]


def test_version_flag_prints_versions_device_and_commit(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    lines = dict(line.split(" ", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["hptransfer"] == hptransfer.__version__
    assert lines["torch"] == torch.__version__
    assert lines["ray"] == importlib.metadata.version("ray")
    assert lines["optuna"] == importlib.metadata.version("optuna")
    assert lines["triton"] in (importlib.metadata.version("triton"), "not installed")
    assert lines["device"].startswith("cpu") and lines["commit"]
    assert lines["kernel"] == "auto -> torch (Triton is used on CUDA GPUs only)"


def test_a_trained_run_records_its_provenance(gpt_run) -> None:
    result = train(gpt_run)
    assert set(result.provenance) == set(provenance.FIELDS)
    assert result.provenance["torch_version"] == torch.__version__
    assert result.provenance["device"].startswith("cpu")
    assert math.isfinite(result.val_loss_se) and result.val_loss_se > 0
    outcome = {**vars(result), **result.provenance, "status": "completed"}
    row = trial_row(point_id(gpt_run), gpt_run, "s", "h", outcome)
    assert {name: row[name] for name in provenance.FIELDS} == result.provenance
    assert row["kernel"] == result.kernel and row["val_loss_se"] == result.val_loss_se
    # a run that failed before reporting keeps this process's versions, and no device
    failed = trial_row(point_id(gpt_run), gpt_run, "s", "h", {"status": "error"})
    assert failed["hptransfer_version"] == hptransfer.__version__ and failed["device"] == ""


def test_commit_is_this_checkout_or_empty() -> None:
    head = provenance.commit()
    in_checkout = (Path(hptransfer.__file__).parents[1] / ".git").exists()
    assert (len(head.removesuffix("+dirty")) == 40) if in_checkout else head == ""


def test_the_version_lives_in_one_place_and_the_corpus_ships() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "hptransfer.__version__"
    globs = project["tool"]["setuptools"]["package-data"]["hptransfer"]
    corpus = sorted((ROOT / "hptransfer" / "data" / "corpus").iterdir())
    shipped = {p for g in globs for p in (ROOT / "hptransfer").glob(g)}
    assert corpus and set(corpus) <= shipped

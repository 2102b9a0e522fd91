"""Trial ids, objectives, Optuna resume plans and the summary table (no Ray needed)."""

from __future__ import annotations

import math
import sys

import pandas as pd
from conftest import tiny_spec

from hptransfer.display import format_hp
from hptransfer.runtime.cluster import ray_temp_dir
from hptransfer.runtime.identity import config_hash, trial_row
from hptransfer.store import ResultsStore
from hptransfer.sweep import parse_spec
from hptransfer.sweep.report import best_per_cell
from hptransfer.sweep.run import move_aside
from hptransfer.sweep.search import plan_cell
from hptransfer.sweep.trials import DIVERGED_CAP, Job, grid_runs, jobs_for_runs, objective, with_hps

OPTUNA = tiny_spec(
    search={"algorithm": "optuna", "num_samples": 5, "space": {"lr": {"low": 1e-4, "high": 1e-1}}},
    seeds=[0, 1],
)


def test_trial_ids_are_stable_and_seed_suffixed():
    runs = grid_runs(parse_spec(tiny_spec()))
    again = grid_runs(parse_spec(tiny_spec()))
    jobs = jobs_for_runs(runs + again)  # duplicates collapse
    assert len(jobs) == len(runs) == 4
    assert [job.trial_ids for job in jobs] == [job.trial_ids for job in jobs_for_runs(again)]
    assert {job.trial_ids[0].rsplit("-s", 1)[1] for job in jobs} == {"0", "1"}
    assert len({job.point_id for job in jobs}) == 2  # 2 LRs, each with 2 seeds


def test_objective_ranks_diverged_runs_last():
    assert objective(2.0, 2.1, False) == 2.0
    assert objective(math.nan, 15.0, True) == 15.0
    assert objective(math.nan, math.inf, True) == DIVERGED_CAP


def outcome(val: float, status: str = "completed", diverged: bool = False) -> dict:
    return {"status": status, "val_loss": val, "train_loss": val + 0.1, "diverged": diverged,
            "steps": 10, "tokens": 320, "wall_s": 0.1, "kernel": "dense"}  # fmt: skip


def test_optuna_plan_counts_only_complete_points(tmp_path):
    spec = parse_spec(OPTUNA)
    cell = spec.cells[0]
    key = config_hash(cell)[:8]
    rows = []
    for number, (lr, seeds, status) in enumerate(
        [(0.01, (0, 1), "completed"), (0.02, (0,), "completed"), (0.03, (0, 1), "error")]
    ):
        for seed in seeds:
            run = with_hps(cell, {"lr": lr}, seed)
            point = f"{key}-n{number:04d}"
            rows.append(trial_row(point, run, "s", spec.hash, outcome(2 + lr, status)))
    store = ResultsStore(tmp_path)
    with store.lock():
        store.append(rows, [])
    plan = plan_cell(spec, cell, store.read_trials())
    assert plan.finished == [({"lr": 0.01}, 2.01)]  # mean over both seeds
    assert plan.remaining == 4 and plan.next_sample == 3


def test_optuna_job_numbers_continue_after_stored_ones():
    spec = parse_spec(OPTUNA)
    plan = plan_cell(spec, spec.cells[0], ResultsStore("/nonexistent").read_trials())
    plan.next_sample = 7

    class Trial:
        def __init__(self, trial_id: str, lr: float):
            self.trial_id, self.config = trial_id, {"lr": lr}

    job = plan.job_of(Trial("a", 0.05))
    assert job.point_id.endswith("-n0007") and plan.job_of(Trial("a", 0.05)) is job
    assert [run.hps.lr for run in job.runs] == [0.05, 0.05]
    assert [run.seed for run in job.runs] == [0, 1]
    assert plan.job_of(Trial("b", 0.01)).point_id.endswith("-n0008")


def test_best_per_cell_averages_seeds_and_flags_edges():
    spec = parse_spec(tiny_spec(search={"space": {"lr": {"log2_range": [-8, -6], "step": 1}}}))
    losses = {2.0**-8: (3.0, 3.2), 2.0**-7: (2.0, 2.4), 2.0**-6: (2.1, math.nan)}
    rows = []
    for run in grid_runs(spec):
        val = losses[run.hps.lr][run.seed]
        job = Job(config_hash(with_hps(run, {}, 0)), (run,))
        rows.append(trial_row(job.point_id, run, "s", "h", outcome(val, diverged=math.isnan(val))))
    best = best_per_cell(pd.DataFrame(rows), ["lr"])
    assert len(best) == 1 and best.loc[0, "lr"] == 2.0**-7
    assert best.loc[0, "val_loss"] == 2.2 and best.loc[0, "diverged"] == 1
    assert best.loc[0, "note"] == ""


def test_format_hp():
    assert format_hp(2.0**-7.5) == "2^-7.5" and format_hp(0.003) == "0.003"


def test_ray_temp_dir_is_short(tmp_path):
    long = tmp_path / ("x" * 80)
    assert len(str(ray_temp_dir(long))) <= 40
    assert ray_temp_dir(long) == ray_temp_dir(long)


def test_new_moves_old_results_aside(tmp_path):
    folder = tmp_path / "proxy"
    folder.mkdir()
    (folder / "trials.parquet").write_bytes(b"old")
    move_aside(folder, sys.stdout)
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("proxy.replaced-")]
    assert not folder.exists() and len(aside) == 1
    assert (aside[0] / "trials.parquet").read_bytes() == b"old"


def test_a_recorded_base_head_count_is_part_of_the_point_id():
    """Unrecorded base heads hash as before (see the committed-study test below); a base
    whose heads differ from the run's is another configuration."""
    from hptransfer.runtime.identity import point_id
    from tests.conftest import tiny_gpt_run

    run = tiny_gpt_run()
    other_heads = run.retarget(heads=1)  # the base keeps 2 heads, recorded
    assert other_heads.base.heads == 2 and point_id(other_heads) != point_id(run)


def test_committed_study_runs_keep_their_trial_ids() -> None:
    """New config options hash only when set: the stored runs of a committed study are the
    ones its spec plans (so re-running it trains nothing already stored)."""
    from pathlib import Path

    from hptransfer.runtime.identity import point_id, trial_id
    from hptransfer.sweep import load_spec
    from hptransfer.sweep.trials import grid_runs

    root = Path(__file__).parents[2]
    stored = set(pd.read_parquet(root / "results/lr_vs_density_supar/trials.parquet")["trial_id"])
    spec = load_spec(root / "sweeps/lr_vs_density_supar.yaml")
    planned = {trial_id(point_id(run), run.seed) for run in grid_runs(spec) if run.seed < 2}
    assert planned == stored and len(stored) == 90

"""Sweep spec validation: every bad input is one line naming the file and key, exit code 2."""

from __future__ import annotations

import dataclasses
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import tiny_spec

from hptransfer.cli.main import main
from hptransfer.errors import ConfigError, ResultsError
from hptransfer.store import ResultsStore
from hptransfer.sweep import load_spec, parse_spec
from hptransfer.sweep.run import _check_same_spec, check_runs
from hptransfer.sweep.trials import grid_runs

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "sweeps").glob("*.yaml"))


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["sweep", *args])
    err = capsys.readouterr().err
    return code, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hptransfer: error:"), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


BAD_SPECS = {
    "yaml-syntax": ("name: [unclosed\n", ["YAML syntax error", "line"]),
    "unknown-top-key": (tiny_spec(modle={}), ["modle", "did you mean 'model'"]),
    "unknown-nested-key": (tiny_spec(train={"stpes": 5}), ["train.stpes", "'steps'"]),
    "wrong-type": (tiny_spec(model={"width": "wide"}), ["model.width", "expected an integer"]),
    "wrong-type-bool": (tiny_spec(model={"bias": "yes"}), ["model.bias", "true or false"]),
    "empty-space": (tiny_spec(search={"space": {}}), ["search.space", "empty"]),
    "no-search": (tiny_spec(search=None), ["search.space", "empty"]),
    "empty-values": (
        tiny_spec(search={"space": {"lr": {"values": []}}}),
        ["search.space.lr.values", "empty"],
    ),
    "zero-lr": (
        tiny_spec(search={"space": {"lr": {"values": [0.01, 0.0]}}}),
        ["search.space.lr", "lr must be > 0"],
    ),
    "negative-lr-range": (
        tiny_spec(search={"algorithm": "optuna", "space": {"lr": {"low": -1, "high": 0.1}}}),
        ["search.space.lr", "> 0"],
    ),
    "zero-log-range": (
        tiny_spec(
            search={"algorithm": "optuna", "space": {"lr": {"low": 0, "high": 1, "log": True}}}
        ),
        ["search.space.lr.low", "low > 0"],
    ),
    "inverted-log2-range": (
        tiny_spec(search={"space": {"lr": {"log2_range": [-4, -8]}}}),
        ["log2_range", "empty"],
    ),
    "density-zero": (tiny_spec(model={"density": [1.0, 0.0]}), ["model.density", "(0, 1]"]),
    "density-above-one": (tiny_spec(model={"density": 1.5}), ["model.density", "(0, 1]"]),
    "base-density": (tiny_spec(base={"density": 2}), ["base.density", "(0, 1]"]),
    "unknown-hp": (
        tiny_spec(search={"space": {"init_sd": {"values": [0.1]}}}),
        ["search.space.init_sd", "did you mean 'init_std'"],
    ),
    "unknown-parameterization": (tiny_spec(parameterization=["supr"]), ["'supar'"]),
    "unknown-algorithm": (tiny_spec(search={"algorithm": "bayes"}), ["search.algorithm"]),
    "continuous-in-grid": (
        tiny_spec(search={"space": {"lr": {"low": 0.001, "high": 0.1}}}),
        ["search.space.lr", "optuna"],
    ),
    "asha-without-evals": (
        tiny_spec(train={"eval_every": 0}, asha={"grace_period": 2}),
        ["asha", "eval_every"],
    ),
    "hp-fixed-and-searched": (tiny_spec(hps={"lr": 0.01}), ["hps.lr", "also searched"]),
    "not-a-mapping": ("- just\n- a list\n", ["expected a mapping"]),
    "missing-name": ({k: v for k, v in tiny_spec().items() if k != "name"}, ["name", "missing"]),
    "duplicate-seed": (tiny_spec(seeds=[0, 0]), ["seeds", "twice"]),
    "duplicate-density": (tiny_spec(model={"density": [0.5, 0.5]}), ["model.density", "twice"]),
    "cmaes-on-a-grid": (
        tiny_spec(search={"algorithm": "optuna", "sampler": "cmaes"}),
        ["search.space.lr", "cmaes"],
    ),
    "heads-do-not-divide": (tiny_spec(model={"width": [16, 17]}), ["divisible"]),
    "no-lr": (
        tiny_spec(search={"space": {"init_std": {"values": [0.01, 0.02, 0.04]}}}),
        ["search.space", "has no lr", "hps.lr"],
    ),
    "zero-init-std-range": (
        tiny_spec(
            search={
                "algorithm": "optuna",
                "num_samples": 20,
                "space": {"lr": {"values": [0.01]}, "init_std": {"low": 0.0, "high": 0.1}},
            }
        ),
        ["search.space.init_std", "init_std must be > 0"],
    ),
    "zero-alpha-attn-range": (
        tiny_spec(
            search={
                "algorithm": "optuna",
                "num_samples": 20,
                "space": {"lr": {"values": [0.01]}, "alpha_attn": {"low": 0.0, "high": 4.0}},
            }
        ),
        ["search.space.alpha_attn", "alpha_attn must be > 0; got 0.0"],
    ),
    "negative-alpha-attn-values": (
        tiny_spec(search={"space": {"lr": {"values": [0.01]}, "alpha_attn": {"values": [-1, 2]}}}),
        ["search.space.alpha_attn", "alpha_attn must be > 0; got -1.0"],
    ),
    "zero-alpha-attn-fixed": (tiny_spec(hps={"alpha_attn": 0}), ["hps.alpha_attn must be > 0"]),
    "negative-alpha-values": (
        tiny_spec(search={"space": {"lr": {"values": [0.01]}, "alpha_out": {"values": [-1, 1]}}}),
        ["search.space.alpha_out", "alpha_out must be > 0"],
    ),
    "joint-optuna-too-few": (
        tiny_spec(
            search={
                "algorithm": "optuna",
                "num_samples": 8,
                "space": {
                    "lr": {"low": 1e-4, "high": 0.1, "log": True},
                    "init_std": {"low": 0.01, "high": 0.2, "log": True},
                    "alpha_out": {"low": 0.5, "high": 4, "log": True},
                },
            }
        ),
        ["search.num_samples", "8 points", "3 HPs", "needs at least 11"],
    ),
    "joint-grid-two-values": (
        tiny_spec(
            search={
                "space": {
                    "lr": {"log2_range": [-9, -5], "step": 1},
                    "init_std": {"values": [0.02, 0.04]},
                }
            }
        ),
        ["search.space.init_std", "2 value(s)", "at least 3"],
    ),
    "slice-of-unsearched-hp": (
        tiny_spec(search={"slice": {"hp": "init_std"}}),
        ["search.slice.hp", "'init_std' is not searched"],
    ),
    "slice-step-zero": (tiny_spec(search={"slice": {"step": 0}}), ["search.slice", "step > 0"]),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_is_one_line_exit_2(case, write_spec, capsys, tmp_path):
    content, fragments = BAD_SPECS[case]
    path = write_spec(content)
    code, err = run_cli(capsys, str(path), "--results", str(tmp_path / "results"))
    assert_one_line_error(code, err, str(path), *fragments)
    assert not (tmp_path / "results").exists()


def test_missing_file(capsys, tmp_path):
    code, err = run_cli(capsys, str(tmp_path / "nope.yaml"))
    assert_one_line_error(code, err, "nope.yaml", "not found")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_address_fails_fast(write_spec, capsys, tmp_path):
    path = write_spec(tiny_spec())
    address = f"127.0.0.1:{free_port()}"
    results = tmp_path / "results"
    code, err = run_cli(capsys, str(path), "--results", str(results), "--address", address)
    assert_one_line_error(code, err, address, "cannot reach a Ray cluster", "ray start --head")
    assert not results.exists()


def test_bad_address_syntax(write_spec, capsys, tmp_path):
    path = str(write_spec(tiny_spec()))
    code, err = run_cli(capsys, path, "--results", str(tmp_path / "r"), "--address", "nonsense")
    assert_one_line_error(code, err, "bad Ray address")
    assert not (tmp_path / "r").exists()


def test_changed_spec_is_refused(write_spec, capsys, tmp_path):
    old = parse_spec(tiny_spec())
    (tmp_path / "results" / "tiny").mkdir(parents=True)
    (tmp_path / "results" / "tiny" / "spec.yaml").write_text(old.to_yaml())
    path = write_spec(tiny_spec(seeds=[0, 1, 2]))
    code, err = run_cli(capsys, str(path), "--results", str(tmp_path / "results"))
    assert_one_line_error(code, err, "different spec", "changed: seeds", "--new")


def test_console_script_error_is_one_line(tmp_path):
    command = shutil.which("hptransfer")
    prefix = [command] if command else [sys.executable, "-m", "hptransfer.cli.main"]
    proc = subprocess.run(
        [*prefix, "sweep", str(tmp_path / "missing.yaml")], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_defaults_and_normalised_round_trip():
    spec = parse_spec(tiny_spec(model={"density": [1, 0.5]}, parameterization=["sp", "supar"]))
    assert spec.widths == (16,) and spec.densities == (1.0, 0.5)
    assert spec.base.width == 16 and spec.base.density == 1.0
    assert spec.search.algorithm == "grid" and spec.resources.max_concurrent is None
    assert spec.search.space[0].values == (2.0**-7, 2.0**-6)
    again = parse_spec(yaml.safe_load(spec.to_yaml()))
    assert again == spec and again.hash == spec.hash


def test_hash_ignores_resources_but_not_search():
    base = parse_spec(tiny_spec()).hash
    assert parse_spec(tiny_spec(resources={"max_concurrent": 1})).hash == base
    assert parse_spec(tiny_spec(ray={"address": "127.0.0.1:6379"})).hash == base
    changed = tiny_spec(search={"space": {"lr": {"log2_range": [-8, -6], "step": 1}}})
    assert parse_spec(changed).hash != base


def test_log2_grid_and_yaml_float_quirk():
    spec = parse_spec(
        tiny_spec(
            train={"eps": "1e-8"},  # YAML 1.1 reads 1e-8 (no dot) as a string
            search={"space": {"lr": {"log2_range": [-10, -8]}}},
        )
    )
    assert spec.train.eps == 1e-8
    assert [v for v in spec.search.space[0].values] == [2.0**e for e in (-10, -9.5, -9, -8.5, -8)]


def test_grid_runs_cross_product():
    spec = parse_spec(
        tiny_spec(model={"density": [1, 0.25]}, parameterization=["sp", "supar"], seeds=[0, 1, 2])
    )
    runs = grid_runs(spec)
    assert len(runs) == 2 * 2 * 2 * 3
    assert {(r.parameterization, r.model.density, r.hps.lr, r.seed) for r in runs}.__len__() == 24


def test_train_steps_list_is_a_horizon_axis_with_warmup_as_a_fraction():
    spec = parse_spec(tiny_spec(train={"steps": [10, 30, 90], "warmup_steps": 2}))
    assert spec.steps == (10, 30, 90) and spec.train.steps == 10
    runs = grid_runs(spec)
    assert len(runs) == 3 * len(grid_runs(parse_spec(tiny_spec())))
    assert {(r.train.steps, r.train.warmup_steps) for r in runs} == {(10, 2), (30, 6), (90, 18)}
    again = parse_spec(yaml.safe_load(spec.to_yaml()))
    assert again == spec and again.hash == spec.hash and again.to_dict()["train"]["steps"] == [
        10, 30, 90
    ]  # fmt: skip
    single = tiny_spec(train={"steps": [10]})
    assert parse_spec(single).hash == parse_spec(tiny_spec(train={"steps": 10})).hash


@pytest.mark.parametrize(
    ("train", "fragment"),
    [
        ({"steps": [10, 10]}, "train.steps: lists a value twice"),
        ({"steps": [10, 0]}, "train.steps: must be >= 1"),
        ({"steps": []}, "train.steps: is empty"),
    ],
)
def test_bad_horizon_lists(train, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_spec(tiny_spec(train=train))


def test_batch_size_list_is_a_batch_axis_at_the_first_batchs_tokens():
    data = {"batch_size": [4, 2, 8, 16], "eval_batches": 4}
    spec = parse_spec(tiny_spec(data=data, train={"steps": 30, "warmup_steps": 3}))
    assert spec.batch_sizes == (4, 2, 8, 16) and spec.data.batch_size == 4
    budgets = {
        (r.data.batch_size, r.train.steps, r.train.warmup_steps, r.data.eval_batches)
        for r in grid_runs(spec)
    }
    # 30 steps × 4 rows = 120 rows (16: 7 whole steps); 4 × 4 = 16 validation windows each
    assert budgets == {(4, 30, 3, 4), (2, 60, 6, 8), (8, 15, 2, 2), (16, 7, 1, 1)}
    again = parse_spec(yaml.safe_load(spec.to_yaml()))
    assert again == spec and again.hash == spec.hash
    assert again.to_dict()["data"]["batch_size"] == [4, 2, 8, 16]
    single = parse_spec(tiny_spec(data={"batch_size": [4]}))
    assert single.hash == parse_spec(tiny_spec()).hash and single.batches == ()


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"data": {"batch_size": [4, 4]}}, "data.batch_size: lists a value twice"),
        ({"data": {"batch_size": [4, 64]}}, r"64 rows is more than the 10 steps × 4 rows"),
        ({"data": {"batch_size": [4, 14, 15]}}, "14 and 15 both train 2 steps"),
        (
            {"data": {"batch_size": [4, 8]}, "train": {"steps": [10, 20]}},
            "data.batch_size: is a list and so is train.steps",
        ),
        (
            {"data": {"batch_size": [4, 8]}, "train": {"eval_every": 5}, "asha": {}},
            "asha: needs a single budget",
        ),
    ],
)
def test_bad_batch_lists(changes, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_spec(tiny_spec(**changes))


def test_asha_needs_a_single_horizon():
    spec = tiny_spec(train={"steps": [10, 20], "eval_every": 5}, asha={"grace_period": 5})
    with pytest.raises(ConfigError, match="asha: needs a single budget"):
        parse_spec(spec)


def test_error_names_file(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(tiny_spec(model={"depth": 0})))
    with pytest.raises(ConfigError, match=r"x\.yaml: model\.depth"):
        load_spec(path)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_are_valid(path, tmp_path):
    spec = load_spec(path)
    assert spec.name == path.stem
    cells = spec.cells
    if spec.data.corpus == "tokens" and not Path(spec.data.path).exists():
        # made by `data prepare` (the spec says how), not committed: a stand-in folder
        stand_in = str(_token_folder(tmp_path / "tokens"))
        cells = [
            dataclasses.replace(c, data=dataclasses.replace(c.data, path=stand_in)) for c in cells
        ]
    check_runs(cells)  # data loads and fits each model


def _token_folder(folder: Path, vocab: int = 4096) -> Path:
    import json

    import numpy as np

    folder.mkdir()
    for split in ("train", "val"):
        (np.arange(5000) % vocab).astype("<u2").tofile(folder / f"{split}.bin")
    (folder / "meta.json").write_text(json.dumps({"vocab_size": vocab, "dtype": "uint16"}))
    return folder


def test_examples_exist():
    assert "proxy.yaml" in {p.name for p in EXAMPLES} and len(EXAMPLES) >= 3


def test_a_fixed_lr_makes_a_search_without_lr_valid():
    spec = parse_spec(
        tiny_spec(hps={"lr": 0.01}, search={"space": {"init_std": {"values": [0.01, 0.02]}}})
    )
    assert spec.search.names == ("init_std",) and spec.hps.lr == 0.01


def test_slice_offsets_seeds_and_hash():
    plain = parse_spec(tiny_spec())
    assert plain.search.slice is None and "slice" not in plain.to_dict()["search"]
    spec = parse_spec(tiny_spec(search={"slice": {"octaves": 1, "step": 0.5, "seeds": [0, 3]}}))
    assert spec.search.slice.offsets() == (-1.0, -0.5, 0.0, 0.5, 1.0)
    assert spec.search.slice.seeds == (0, 3) and spec.hash != plain.hash
    again = parse_spec(yaml.safe_load(spec.to_yaml()))
    assert again == spec and again.hash == spec.hash


def test_alpha_attn_is_searched_or_fixed_like_alpha_out():
    from hptransfer.runtime.identity import point_id, trial_row

    space = {"lr": {"log2_range": [-8, -6], "step": 1}, "alpha_attn": {"values": [1, 2, 4]}}
    searched = parse_spec(tiny_spec(search={"space": space}))
    runs = grid_runs(searched)
    assert sorted({r.hps.alpha_attn for r in runs}) == [1.0, 2.0, 4.0] and len(runs) == 9 * len(
        searched.seeds
    )
    rows = [trial_row(point_id(r), r, "x", searched.hash, {"status": "completed"}) for r in runs]
    assert [row["alpha_attn"] for row in rows] == [r.hps.alpha_attn for r in runs]
    fixed = parse_spec(tiny_spec(hps={"alpha_attn": 2}))
    assert fixed.to_dict()["hps"]["alpha_attn"] == 2.0
    assert {r.hps.alpha_attn for r in grid_runs(fixed)} == {2.0}
    assert parse_spec(tiny_spec(hps={"alpha_attn": 1})).hash == parse_spec(tiny_spec()).hash


def test_readout_zero_init_as_a_list_is_a_base_setting_searched_like_an_axis():
    from hptransfer.runtime.identity import point_id, trial_row

    spec = parse_spec(tiny_spec(model={"readout_zero_init": [False, True]}))
    assert spec.zero_inits == (False, True) and not spec.model.readout_zero_init
    assert spec.to_dict()["model"]["readout_zero_init"] == [False, True]
    runs = grid_runs(spec)
    assert [r.model.readout_zero_init for r in runs].count(True) == len(runs) // 2
    rows = [trial_row(point_id(r), r, "x", spec.hash, {"status": "completed"}) for r in runs]
    assert [row["readout_zero_init"] for row in rows] == [r.model.readout_zero_init for r in runs]
    assert (
        parse_spec(tiny_spec(model={"readout_zero_init": False})).hash
        == parse_spec(tiny_spec()).hash
    )
    for bad, message in (
        ({"readout_zero_init": [True, False], "tied_embeddings": True}, "needs an untied"),
        ({"readout_zero_init": [False, "on"]}, "model.readout_zero_init[1]: expected true"),
        ({"readout_zero_init": [True, True]}, "lists a value twice"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_spec(tiny_spec(model=bad))


def test_a_broken_stored_spec_yaml_is_one_line(tmp_path: Path) -> None:
    """A results folder whose spec.yaml does not parse: one line with its line and column."""
    (tmp_path / "spec.yaml").write_text("name: [x\n  y: 1\n")
    spec = parse_spec({"name": "s", "search": {"space": {"lr": {"log2_range": [-10, -4]}}}})
    with pytest.raises(
        ResultsError, match=r"YAML syntax error \(line 2, column 4: .+\)\); use --new$"
    ):
        _check_same_spec(ResultsStore(tmp_path), spec)

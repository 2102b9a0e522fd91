"""The knobs issue 29's ablations read from a sweep spec: clipping off, κ = η_emb/η searched
like α_out, and explicit (width, density) shapes instead of the width × density product."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import tiny_spec

from hptransfer.errors import ConfigError
from hptransfer.sweep import load_spec, parse_spec
from hptransfer.sweep.trials import grid_runs


@pytest.mark.parametrize("off", [None, 0])
def test_grad_clip_null_or_0_is_no_clipping_and_one_spec(off):
    spec = parse_spec(tiny_spec(train={"grad_clip": off}))
    assert spec.train.grad_clip is None and {r.train.grad_clip for r in grid_runs(spec)} == {None}
    assert spec.hash == parse_spec(tiny_spec(train={"grad_clip": None})).hash
    assert spec.hash != parse_spec(tiny_spec()).hash
    with pytest.raises(ConfigError, match=r"train.grad_clip must be >= 0"):
        parse_spec(tiny_spec(train={"grad_clip": -0.5}))


def test_kappa_is_searched_on_a_log2_grid_or_fixed_like_alpha_out():
    from hptransfer.runtime.identity import config_hash, point_id, run_key, trial_row

    space = {
        "lr": {"log2_range": [-8, -6], "step": 1},
        "lr_emb_ratio": {"log2_range": [0, 3], "step": 1},
    }
    searched = parse_spec(tiny_spec(search={"space": space}))
    runs = grid_runs(searched)
    assert sorted({r.hps.lr_emb_ratio for r in runs}) == [1.0, 2.0, 4.0, 8.0]
    assert len(runs) == 3 * 4 * len(searched.seeds) * len(searched.parameterizations)
    rows = [trial_row(point_id(r), r, "x", searched.hash, {"status": "completed"}) for r in runs]
    assert [row["lr_emb_ratio"] for row in rows] == [r.hps.lr_emb_ratio for r in runs]
    fixed = parse_spec(tiny_spec(hps={"lr_emb_ratio": 2}))
    assert fixed.to_dict()["hps"]["lr_emb_ratio"] == 2.0
    plain, one = parse_spec(tiny_spec()), parse_spec(tiny_spec(hps={"lr_emb_ratio": 1}))
    assert one.hash == plain.hash and "lr_emb_ratio" not in plain.to_dict()["hps"]
    (before,), (explicit,), (changed,) = (grid_runs(s)[:1] for s in (plain, one, fixed))
    assert (run_key(explicit), config_hash(explicit)) == (run_key(before), config_hash(before))
    assert run_key(changed) != run_key(before) and config_hash(changed) != config_hash(before)


def shaped(shapes: object, **model: object) -> dict:
    """The tiny spec with ``model.shapes`` in place of its width."""
    raw = tiny_spec()
    del raw["model"]["width"]
    raw["model"].update(shapes=shapes, **model)
    return raw


def test_model_shapes_train_the_listed_width_density_pairs_only():
    """d·ρ held at 4 while width grows: three shapes, not the 3 × 3 product."""
    shapes = [[16, 0.25], [32, 0.125], [64, 0.0625]]
    spec = parse_spec({**shaped(shapes), "parameterization": ["sp", "supar"]})
    pairs = [(c.parameterization, c.model.width, c.model.density) for c in spec.cells]
    assert pairs == [(p, w, d) for p in ("sp", "supar") for w, d in shapes]
    assert spec.base.width == 16 and spec.widths == (16, 32, 64)
    assert {r.model.width * r.model.density for r in grid_runs(spec)} == {4.0}
    assert len(grid_runs(spec)) == 2 * 3 * 2 * 2  # parameterizations × shapes × lr × seeds
    written = spec.to_dict()["model"]
    assert written["shapes"] == shapes and "width" not in written and "density" not in written
    again = parse_spec(yaml.safe_load(spec.to_yaml()))
    assert again == spec and again.hash == spec.hash
    assert "shapes" not in parse_spec(tiny_spec()).to_dict()["model"]


@pytest.mark.parametrize(
    ("shapes", "extra", "message"),
    [
        ([[16, 0.5]], {"width": 16}, "model.shapes: replaces model.width and model.density"),
        ([], {}, "model.shapes: expected a list of [width, density] pairs"),
        ([[16]], {}, "model.shapes[0]: expected a [width, density] pair"),
        ([[16, 0.5], [16, 0.5]], {}, "model.shapes: lists a value twice"),
        ([[16, "half"]], {}, "model.shapes[0]"),
        ([[16, 0.5], [32, 2.0]], {}, "density must be in (0, 1]"),
    ],
)
def test_bad_model_shapes_are_one_line(shapes, extra, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_spec(shaped(shapes, **extra))


ABLATIONS = sorted((Path(__file__).parents[2] / "sweeps" / "realtok").glob("ablate_*.yaml"))


@pytest.mark.parametrize("path", ABLATIONS, ids=[p.stem for p in ABLATIONS])
def test_the_ablation_sweeps_are_the_300_step_cell_on_a_half_octave_grid(path: Path):
    spec = load_spec(path)
    lr = next(hp for hp in spec.search.space if hp.name == "lr")
    assert spec.name == path.stem and spec.train.steps == 300 and spec.seeds == (0, 1, 2)
    assert spec.data.path == "data/skjv-bpe4k" and (spec.base.width, spec.base.density) == (64, 1)
    assert len(lr.values) == 5 and lr.to_dict()["step"] == 0.5
    assert len(grid_runs(spec)) <= 20 * len(spec.seeds) * len(spec.cells)
    assert (64, 0.0625) in spec.model_shapes


def test_all_seven_ablations_are_written():
    names = {p.stem for p in ABLATIONS}
    assert names == {
        *(f"ablate_supar_{x}" for x in ("init", "lr", "kappa", "noclip", "dr4")),
        "ablate_sp_noclip",
        "ablate_sp_dr4",
    }

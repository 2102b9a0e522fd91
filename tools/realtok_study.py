"""Issue 29's horizon study on real tokens, run part by part, resumable:

    nice -n 15 python tools/realtok_study.py            # from the repository root

SP against SμPar on the LLaMA block over Shakespeare + the King James Bible (BPE of 4096
tokens, ``data/skjv-bpe4k``), each cell an η grid at 3 seeds, the base (width 64, dense)
tuned jointly (η × σ × α_out) at each horizon. The parts run in ``STAGES`` order, cheapest
and most informative first; each is one ``hptransfer sweep`` (re-running this script resumes
the one interrupted and skips those done). A cell's sweep takes σ and α_out from the base
grid's best point at its horizon and is written to ``sweeps/realtok/<name>.yaml`` before it
runs. ``--list`` prints the parts and whether each is done; ``--only TEXT`` keeps the parts
whose name contains TEXT (two processes can then run disjoint parts side by side).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

DATA = "data/skjv-bpe4k"
SOURCES = "data/sources/kjv-books.jsonl"
SPECS = Path("sweeps/realtok")
RESULTS = Path("results")
SEEDS = [0, 1, 2]
EVAL_BATCHES = 512  # 8192 windows of 64 tokens: validation SE ≈ 0.0045 nats
WARMUP_FRACTION = 0.1
# η grids (log2, half-octave steps), where the earlier studies put each optimum; the sweep's
# --auto-extend grows a range whose optimum sits on its edge.
LR_RANGES = {"dense": [-8.0, -6.0], "supar": [-8.0, -6.0], "sp": [-6.5, -4.5]}
# The base's joint grid: at 300 steps η × σ × α_out (its best point had η and α_out on the low
# and high edges, σ inside at 0.04); at the longer horizons η × α_out on log2 grids with σ held
# at 0.04, shifted toward those edges and auto-extended until bracketed.
BASE_SPACES = {
    300: {
        "lr": {"log2_range": [-8, -6], "step": 1},
        "init_std": {"values": [0.02, 0.04, 0.08]},
        "alpha_out": {"values": [1, 2, 4]},
    },
    "longer": {
        "lr": {"log2_range": [-10, -8], "step": 1},
        "alpha_out": {"log2_range": [1, 3], "step": 1},
    },
}
LONG_BASE_INIT_STD = 0.04
BASE_WIDTH = 64
DENSITY_TAGS = {1.0: "dense", 0.25: "r4", 0.0625: "r16"}


@dataclass(frozen=True)
class Stage:
    """One sweep: the base's joint grid at ``steps``, or one cell's η grid."""

    steps: int
    width: int = BASE_WIDTH
    density: float = 1.0
    parameterization: str = "sp"
    base: bool = False

    @property
    def name(self) -> str:
        if self.base:
            return f"realtok_base_h{self.steps}"
        tag = DENSITY_TAGS[self.density]
        one_model = tag == "dense" and self.width == BASE_WIDTH  # SP and SμPar: the same
        cell = tag if one_model else f"{tag}_{self.parameterization}"
        return f"realtok_w{self.width}_h{self.steps}_{cell}"


def _horizon(steps: int, width: int, densities: tuple[float, ...]) -> list[Stage]:
    stages = []
    for density in densities:
        if density == 1.0 and width == BASE_WIDTH:
            stages.append(Stage(steps, width))
        else:
            stages += [Stage(steps, width, density, p) for p in ("supar", "sp")]
    return stages


# Part 1: width 64 at 1/16 (where SμPar loses at 300 steps) and dense, at growing horizons;
# part 2: width 64 at 1/4; part 3: width 128 (its base is still width 64, dense).
STAGES = [
    stage
    for steps in (300, 900, 2700)
    for stage in (Stage(steps, base=True), *_horizon(steps, 64, (0.0625, 1.0)))
] + [
    *(stage for steps in (300, 900, 2700) for stage in _horizon(steps, 64, (0.25,))),
    *(stage for steps in (300, 900, 2700) for stage in _horizon(steps, 128, (0.0625, 1.0, 0.25))),
]


def spec(stage: Stage, hps: dict[str, float]) -> dict:
    """The sweep spec of ``stage`` with the fixed base HPs ``hps``."""
    space = _base_space(stage.steps) if stage.base else {"lr": _lr_space(stage)}
    return {
        "name": stage.name,
        "model": {"kind": "gpt", "block": "llama", "width": stage.width,
                  "density": stage.density, "depth": 2, "heads": 4, "context": 64},
        "data": {"corpus": "tokens", "path": DATA, "batch_size": 16, "seq_len": 64,
                 "eval_batches": EVAL_BATCHES},
        "train": {"steps": stage.steps, "warmup_steps": round(WARMUP_FRACTION * stage.steps),
                  "schedule": "cosine", "optimizer": "adamw",
                  "weight_decay_mode": "independent", "eval_every": 0},
        "parameterization": stage.parameterization,
        "base": {"width": BASE_WIDTH, "density": 1.0},
        "hps": hps,
        "search": {"algorithm": "grid", "space": space},
        "seeds": [0] if stage.base else SEEDS,
        "resources": {"cpus_per_trial": 1, "max_concurrent": 1},
    }  # fmt: skip


def _base_space(steps: int) -> dict:
    return dict(BASE_SPACES[300 if steps == 300 else "longer"])


def _lr_space(stage: Stage) -> dict:
    key = "dense" if stage.density == 1.0 else stage.parameterization
    return {"log2_range": LR_RANGES[key], "step": 0.5}


def base_choice(steps: int) -> dict[str, float]:
    """σ and α_out of the base grid's best run at ``steps`` (its lowest validation loss)."""
    trials = pd.read_parquet(RESULTS / Stage(steps, base=True).name / "trials.parquet")
    ok = trials[trials["status"].eq("completed") & ~trials["diverged"].astype(bool)]
    best = ok.loc[ok["val_loss"].idxmin()]
    return {"init_std": float(best["init_std"]), "alpha_out": float(best["alpha_out"])}


def write_spec(stage: Stage) -> Path:
    """``sweeps/realtok/<name>.yaml``; refuses to change one already written."""
    hps = {"weight_decay": 0.1}
    if stage.base and "init_std" not in _base_space(stage.steps):
        hps["init_std"] = LONG_BASE_INIT_STD
    if not stage.base:
        hps |= base_choice(stage.steps)
    text = "# Written by tools/realtok_study.py (issue 29); do not edit.\n" + yaml.safe_dump(
        spec(stage, hps), sort_keys=False
    )
    path = SPECS / f"{stage.name}.yaml"
    if path.exists() and path.read_text() != text:
        sys.exit(f"{path} differs from what the study would write now: the base changed?")
    SPECS.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def done(name: str) -> bool:
    return (RESULTS / name / "DONE").exists()


def run(stage: Stage) -> None:
    path = write_spec(stage)
    extra = [] if stage.base else ["--reuse", str(RESULTS / Stage(stage.steps, base=True).name)]
    if not (stage.base and stage.steps == 300):  # the first base grid ran without it
        extra.append("--auto-extend")
    sweep(stage.name, path, extra)


# The ablation sweeps at 300 steps (part 2 of the issue), written by hand in
# ``sweeps/realtok/ablate_<name>.yaml``, in the order they run (the cheapest test of the
# likeliest cause first), each with the cell whose runs it can copy (same run keys). A spec's
# name is its file's stem (tests/sweep/test_ablation_spec.py), so results/ablate_<name>.
ABLATIONS = {
    "supar_kappa": "realtok_w64_h300_r16_supar",
    "supar_lr": None,
    "supar_init": None,
    "supar_noclip": None,
    "sp_noclip": None,
    "supar_dr4": "realtok_w64_h300_r16_supar",
    "sp_dr4": "realtok_w64_h300_r16_sp",
}


def run_ablation(name: str) -> None:
    reuse = ABLATIONS[name]
    extra = ["--reuse", str(RESULTS / reuse)] if reuse else []
    sweep(f"ablate_{name}", SPECS / f"ablate_{name}.yaml", [*extra, "--auto-extend"])


def sweep(name: str, path: Path, extra: list[str]) -> None:
    command = ["hptransfer", "sweep", str(path), *extra]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    (RESULTS / name / "DONE").write_text("")


def prepare_data() -> None:
    """The corpus (a no-op once prepared)."""
    if Path(DATA).exists():
        return
    if not Path(SOURCES).exists():
        subprocess.run([sys.executable, "tools/kjv_books.py", SOURCES], check=True)
    subprocess.run(
        ["hptransfer", "data", "prepare", "builtin:shakespeare", SOURCES, "--out", DATA,
         "--tokenizer", "bpe:4096", "--val-fraction", "0.2"],
        check=True,
    )  # fmt: skip


def main(argv: list[str]) -> None:
    # The 300-step cells, then the ablations where SμPar lost, then the longer horizons.
    first = [s for s in STAGES if s.steps == 300 and s.width == BASE_WIDTH and s.density != 0.25]
    plan = [(s.name, run, s) for s in first]
    plan += [(f"ablate_{name}", run_ablation, name) for name in ABLATIONS]
    plan += [(s.name, run, s) for s in STAGES if s not in first]
    if "--only" in argv:
        text = argv[argv.index("--only") + 1]
        plan = [part for part in plan if text in part[0]]
    if "--list" in argv:
        for name, _, _ in plan:
            print(f"{'done' if done(name) else '    '}  {name}")
        return
    prepare_data()
    for name, action, item in plan:
        if not done(name):
            action(item)


if __name__ == "__main__":
    main(sys.argv[1:])

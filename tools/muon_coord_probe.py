"""Issue 30's coordinate probe for Muon: which rule keeps each layer's per-step output update flat.

    python tools/muon_coord_probe.py density   # SμPar-Muon with η·m_rho^k, k in {0, -1/2, -1}
    python tools/muon_coord_probe.py width     # SP-Muon against μP-Muon, widths 64 → 512
    python tools/muon_coord_probe.py rescale   # SμPar-Muon, k = 0, the masked update rescaled

Each run is 10 constant-LR Muon steps (no warmup, no clipping) of the GPT-2 block on Shakespeare
through :func:`hptransfer.coord_check.check_run`; the output update is the mean |Δ output| of a
layer on the batch that made the step. The density probe swaps the hidden Muon LR rule of the
registered ``supar`` entry for each candidate k before building the runs (a study-only patch:
the product's rule is the one in ``param/rules.py``). Writes
``results/muon_coord_<mode>/output_update.parquet`` and prints the table of seed means with the
ratio between the extreme shapes (``docs/muon.md``). The rescale probe sets
``train.muon_masked_update: rescale``: each sparse Muon weight's masked update is scaled to
the spectral norm of the dense orthogonalized update it came from.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pandas as pd
import torch

from hptransfer.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from hptransfer.coord_check import check_run
from hptransfer.param import BaseHPs, BaseShape, Role, rules
from hptransfer.param.rules import Scaling
from hptransfer.store import write_frame

GROUPS = ("attn.qkv", "attn.proj", "ffn.up", "ffn.down", "blocks", "logits")
STEPS_SHOWN = (1, 5, 10)


def muon_run(
    p: str, width: int, density: float, seed: int, base_width: int, update: str = "mask"
) -> RunConfig:
    return RunConfig(
        model=ModelConfig(kind="gpt", width=width, depth=2, heads=4, context=64, density=density),
        data=DataConfig(corpus="shakespeare", batch_size=16, seq_len=64),
        train=TrainConfig(
            steps=10,
            optimizer="muon",
            schedule="constant",
            grad_clip=None,
            muon_masked_update=update,
        ),
        hps=BaseHPs(lr=2**-5),
        base=BaseShape(width=base_width),
        parameterization=p,
        seed=seed,
    )


def with_density_exponent(k: float) -> None:
    """Register ``supar`` with its hidden Muon LR η·m_rho^k."""
    supar = rules.SUPAR
    hidden = dataclasses.replace(supar.rules[Role.HIDDEN], muon_lr=Scaling(density=k))
    rules.PARAMETERIZATIONS["supar"] = dataclasses.replace(
        supar, rules={**supar.rules, Role.HIDDEN: hidden}
    )


def output_updates(runs: list[RunConfig], **labels: object) -> list[dict]:
    return [
        {**row, **labels}
        for run in runs
        for row in check_run(run)
        if row["metric"] == "output_update" and row["group"] in GROUPS
    ]


def density_probe(seeds: range) -> tuple[pd.DataFrame, str, str]:
    rows = []
    for k in (0.0, -0.5, -1.0):
        with_density_exponent(k)
        runs = [muon_run("supar", 256, d, s, 256) for d in (1.0, 0.25, 1 / 16) for s in seeds]
        rows += output_updates(runs, k=k)
    with_density_exponent(0.0)
    return pd.DataFrame(rows), "k", "density"


def rescale_probe(seeds: range) -> tuple[pd.DataFrame, str, str]:
    runs = [muon_run("supar", 256, d, s, 256, update="rescale") for d in (1.0, 0.25, 1 / 16)
            for s in seeds]  # fmt: skip
    return pd.DataFrame(output_updates(runs, k=0.0, update="rescaled")), "k", "density"


def width_probe(seeds: range) -> tuple[pd.DataFrame, str, str]:
    runs = [muon_run(p, w, 1.0, s, 64) for p in ("sp", "mup") for w in (64, 128, 256, 512)
            for s in seeds]  # fmt: skip
    return pd.DataFrame(output_updates(runs)), "parameterization", "width"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("density", "width", "rescale"))
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    probe = {"density": density_probe, "width": width_probe, "rescale": rescale_probe}[args.mode]
    frame, rule, axis = probe(range(args.seeds))
    out = Path("results") / f"muon_coord_{args.mode}"
    out.mkdir(parents=True, exist_ok=True)
    write_frame(out / "output_update.parquet", frame)
    shown = frame[frame["step"].isin(STEPS_SHOWN)]
    table = shown.groupby([rule, "group", "step", axis])["value"].mean().unstack(axis)
    table["ratio max/min"] = table.max(axis=1) / table.min(axis=1)
    print(table.round(4).to_string())


if __name__ == "__main__":
    main()

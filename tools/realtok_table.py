"""Issue 29's summary: SμPar − SP on real tokens per (width, density, horizon), from the
finished parts of ``tools/realtok_study.py``:

    python tools/realtok_table.py            # from the repository root

For every sparse cell whose SμPar and SP sweeps both finished, two paired differences (3
seeds, 95% intervals, ``hptransfer.analysis.paired``): each at its own best η, and each at
the dense model's best η at that width and horizon (what a user runs untuned: SμPar's
transferred η, and SP with the dense HPs), against d·ρ and tokens per non-zero
(non-embedding) parameter. Writes ``results/realtok/gaps.parquet`` and
``results/realtok/plots/gap_vs_tokens.png`` and prints the table as markdown.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from hptransfer.analysis.paired import PairedDifference, losses_by_seed, paired_difference
from hptransfer.analysis.plots import save_figure
from hptransfer.config import RunConfig
from hptransfer.sparse_evidence import sparse_budget
from hptransfer.store.io import write_frame
from hptransfer.sweep.parse import load_spec

RESULTS = Path("results")
OUT = RESULTS / "realtok"
VOCAB = 4096  # data/skjv-bpe4k
TRAIN_TOKENS = 2_169_850
CELL = re.compile(
    r"realtok_w(?P<width>\d+)_h(?P<steps>\d+)_(?P<tag>dense|r4|r16)(_(?P<p>sp|supar))?$"
)
DENSITIES = {"dense": 1.0, "r4": 0.25, "r16": 0.0625}


def finished_cells() -> dict[tuple[int, int, float, str], Path]:
    """``(width, steps, density, parameterization) → folder`` of every finished cell; the
    one-model dense cell at the base width counts as both parameterizations."""
    cells = {}
    for folder in sorted(RESULTS.glob("realtok_w*")):
        match = CELL.match(folder.name)
        if not match or not (folder / "trials.parquet").exists():
            continue
        key = (int(match["width"]), int(match["steps"]), DENSITIES[match["tag"]])
        for p in [match["p"]] if match["p"] else ["sp", "supar"]:
            cells[(*key, p)] = folder
    return cells


def seed_losses(folder: Path) -> dict[float, dict[int, float]]:
    """``log2 η → {seed: loss}`` over the η whose every seed converged, with the cell's run at
    the dense η where it was trained apart (``<cell>_at_dense_lr``: off the cell's grid)."""
    extra = folder.with_name(f"{folder.name}_at_dense_lr") / "trials.parquet"
    parts = [folder / "trials.parquet", *([extra] if extra.exists() else [])]
    trials = pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True)
    trials = trials[trials["steps"].ge(trials["max_steps"])]
    points = {}
    for lr, runs in trials.groupby("lr"):
        losses = losses_by_seed(runs)
        if losses is not None:
            points[round(math.log2(lr), 2)] = losses
    return points


def best(points: dict[float, dict[int, float]]) -> float:
    """The log2 η with the lowest seed-mean loss."""
    return min(points, key=lambda lr: _mean(points[lr]))


def gap_row(width: int, steps: int, density: float, cells: dict) -> dict | None:
    """One sparse cell's row, or None while a sweep it needs is unfinished."""
    names = {p: cells.get((width, steps, density, p)) for p in ("supar", "sp")}
    dense = {p: cells.get((width, steps, 1.0, p)) for p in ("supar", "sp")}
    if None in names.values():
        return None
    points = {p: seed_losses(folder) for p, folder in names.items()}
    own = {p: best(points[p]) for p in points}
    budget = sparse_budget(_run(names["supar"]))
    row = {
        "width": width, "steps": steps, "density": density, "per_row": budget.per_row,
        "tokens": budget.tokens, "epochs": budget.tokens / TRAIN_TOKENS,
        "tokens_per_nonzero": budget.tokens_per_nonzero,
        "tokens_per_nonzero_non_embedding": budget.tokens_per_nonzero_non_embedding,
        "supar_best_log2_lr": own["supar"], "sp_best_log2_lr": own["sp"],
        "supar_best_loss": _mean(points["supar"][own["supar"]]),
        "sp_best_loss": _mean(points["sp"][own["sp"]]),
    }  # fmt: skip
    row |= _columns(
        "at_best", paired_difference(points["supar"][own["supar"]], points["sp"][own["sp"]])
    )
    at_dense = {p: best(seed_losses(folder)) if folder else None for p, folder in dense.items()}
    row |= {f"{p}_dense_log2_lr": lr for p, lr in at_dense.items()}
    untuned = [points[p].get(at_dense[p]) for p in ("supar", "sp")]
    row |= _columns("at_dense_lr", None if None in untuned else paired_difference(*untuned))
    return row


def _run(folder: Path) -> RunConfig:
    cell = load_spec(folder / "spec.yaml").cells[0]
    return cell.retarget(input_size=VOCAB, output_size=VOCAB)


def _mean(losses: dict[int, float]) -> float:
    return float(np.mean(list(losses.values())))


def _columns(name: str, diff: PairedDifference | None) -> dict:
    nan = math.nan
    return {
        f"gap_{name}": nan if diff is None else diff.mean,
        f"gap_{name}_low": nan if diff is None else diff.low,
        f"gap_{name}_high": nan if diff is None else diff.high,
        f"gap_{name}_text": "not on the grid" if diff is None else diff.text(),
    }


def gaps() -> pd.DataFrame:
    cells = finished_cells()
    shapes = sorted({(w, s, d) for w, s, d, _ in cells if d < 1})
    rows = [row for shape in shapes if (row := gap_row(*shape, cells)) is not None]
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    lines = [
        "| width | density | d·ρ | steps | tokens / non-zero non-emb. param. | epochs "
        "| SμPar − SP, each at its best η | SμPar − SP at the dense η |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.width} | 1/{round(1 / r.density)} | {r.per_row:g} | {r.steps} "
            f"| {r.tokens_per_nonzero_non_embedding:.0f} | {r.epochs:.2f} "
            f"| {r.gap_at_best_text} (2^{r.supar_best_log2_lr:g} vs 2^{r.sp_best_log2_lr:g}) "
            f"| {r.gap_at_dense_lr_text} |"
        )
    return "\n".join(lines)


def figure(table: pd.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    kinds = {
        "at_best": ("o", "-", "each at its best η"),
        "at_dense_lr": ("s", "--", "at the dense η"),
    }
    for (width, per_row), part in table.groupby(["width", "per_row"]):
        for kind, (marker, line, what) in kinds.items():
            gap = part[f"gap_{kind}"]
            err = [gap - part[f"gap_{kind}_low"], part[f"gap_{kind}_high"] - gap]
            label = f"width {width}, d·ρ {per_row:g}, {what}"
            ax.errorbar(part["tokens_per_nonzero_non_embedding"], gap, yerr=err, marker=marker,
                        linestyle=line, capsize=3, label=label)  # fmt: skip
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("tokens per non-zero non-embedding parameter")
    ax.set_ylabel("SμPar − SP (nats)")
    ax.set_title("LLaMA block, BPE-4096 Shakespeare + KJV, 3 seeds, 95% CI")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main() -> None:
    table = gaps()
    if table.empty:
        raise SystemExit("no sparse cell has both its SμPar and SP sweeps finished")
    write_frame(OUT / "gaps.parquet", table)
    save_figure(figure(table), OUT / "plots", "gap_vs_tokens")
    print(markdown(table))


if __name__ == "__main__":
    main()

"""Issue 30: why the Muon optimum dips at density 1/4 — the masked update, measured alone.

    python tools/muon_mask_probe.py          # from the repository root, a few seconds

A width-d hidden matrix under a static mask M of density ρ gets the gradient M ⊙ G with G of
rank r (G = Δ Xᵀ: r input directions X, r output errors Δ). hptransfer's Muon update is
M ⊙ O with O torch's orthogonalized (Newton–Schulz) M ⊙ G; this probe takes O from one step
of ``torch.optim.Muon`` itself (lr 1, no momentum, no weight decay, from a zero weight). It
reports, per (d, r, ρ), seed means of ‖(M ⊙ O) x‖ for x a unit input direction of G (what
the step does to a layer's output on the inputs that made it), ‖M ⊙ O‖₂, and the output
update after rescaling the masked update to O's spectral norm. Writes
``results/muon_masked_update/masked_update.parquet`` and prints the table (docs/muon.md).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from hptransfer.store import write_frame

WIDTHS = (128, 256)
RANKS = (1, 4, 16, 64)
DENSITIES = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125)
SEEDS = range(5)
OUT = Path("results") / "muon_masked_update"


def orthogonalized(gradient: torch.Tensor) -> torch.Tensor:
    """torch's Muon update for ``gradient``: one step from zero at lr 1."""
    weight = torch.nn.Parameter(torch.zeros_like(gradient))
    weight.grad = gradient.clone()
    torch.optim.Muon([weight], lr=1.0, momentum=0.0, weight_decay=0.0, nesterov=False).step()
    return -weight.detach()


def measure(width: int, rank: int, density: float, seed: int) -> dict[str, float]:
    generator = torch.Generator().manual_seed(seed)
    mask = (torch.rand(width, width, generator=generator) < density).float()
    errors = torch.randn(width, rank, generator=generator)
    inputs = torch.randn(width, rank, generator=generator)
    dense = orthogonalized(mask * (errors @ inputs.T))
    update = mask * dense
    x = inputs[:, 0] / inputs[:, 0].norm()
    spectral = torch.linalg.matrix_norm(update, ord=2).item()
    dense_spectral = torch.linalg.matrix_norm(dense, ord=2).item()
    output = (update @ x).norm().item()
    return {
        "width": width, "rank": rank, "density": density, "seed": seed,
        "output_update": output, "spectral_norm": spectral,
        "orthogonalized_spectral_norm": dense_spectral,
        "rescaled_output_update": output * dense_spectral / spectral,
    }  # fmt: skip


def main() -> None:
    torch.set_num_threads(1)
    rows = [
        measure(width, rank, density, seed)
        for width in WIDTHS
        for rank in RANKS
        for density in DENSITIES
        for seed in SEEDS
    ]
    frame = pd.DataFrame(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    write_frame(OUT / "masked_update.parquet", frame)
    means = frame.groupby(["width", "rank", "density"])[
        ["output_update", "spectral_norm", "rescaled_output_update"]
    ].mean()
    print(means.unstack("density").round(3).to_string())


if __name__ == "__main__":
    main()

"""An MLP: input layer (embedding-like) -> ``depth`` sparse hidden layers -> readout."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hptransfer.config import ModelConfig
from hptransfer.models.gpt import ForwardScales
from hptransfer.models.roles import InputLayer, Readout
from hptransfer.models.sparse import MaskedLinear


class MLP(nn.Module):
    """Features (B, input_size) -> logits (B, output_size)."""

    def __init__(self, cfg: ModelConfig, scales: ForwardScales, device=None) -> None:
        super().__init__()
        if cfg.input_size is None or cfg.output_size is None:
            raise ValueError("MLP needs model.input_size and model.output_size")
        self.cfg = cfg
        self.scales = scales
        self.input = InputLayer(cfg.input_size, cfg.width, bias=cfg.bias, device=device)
        self.hidden = nn.ModuleList(
            MaskedLinear(
                cfg.width,
                cfg.width,
                bias=cfg.bias,
                density=cfg.density,
                mask_kind=cfg.mask,
                mask_block=cfg.mask_block,
                seed=cfg.mask_seed * 1000 + i,
                kernel=cfg.kernel,
                device=device,
            )
            for i in range(cfg.depth)
        )
        self.readout = Readout(
            cfg.width,
            cfg.output_size,
            zero_init=cfg.readout_zero_init,
            bias=cfg.bias,
            device=device,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.input(x) * self.scales.embedding)
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.readout(x) * self.scales.readout

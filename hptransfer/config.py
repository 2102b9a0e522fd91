"""Typed, frozen configuration objects, validated on construction.

Everything a run needs is here: the model shape, the data, the training budget, the base
hyperparameters and the base shape they were tuned at (those two live in
:mod:`hptransfer.param.base`, beside the rules that read them). YAML and CLI input is parsed
into these objects at the boundary (see ``hptransfer.sweep.parse``); inside, they are trusted.
``config`` imports ``param``, never the other way round.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from hptransfer.param import BaseHPs, BaseShape, Multipliers, parameterization
from hptransfer.param.base import check_density, require

MODEL_KINDS = ("gpt", "mlp", "python")  # python: the builder named by model.build
BLOCKS = ("gpt2", "llama")  # GPT blocks: GPT-2's, or LLaMA's (RMSNorm, rotary, SwiGLU)
KERNELS = ("auto", "torch", "triton")
MASK_KINDS = ("random", "row_balanced", "block")
BLOCK_SIZES = (16, 32, 64, 128)  # mask blocks = kernel tiles; tl.dot needs tiles of >= 16
# How a sparse weight takes Muon's (dense) orthogonalized update: masked, or masked and
# rescaled to the dense update's spectral norm (docs/muon.md § Density).
MUON_MASKED_UPDATES = ("mask", "rescale")
OPTIMIZERS = ("adamw", "adam", "sgd", "muon")  # muon: Muon on hidden matrices, AdamW on the rest
SCHEDULES = ("cosine", "linear", "constant")
TRAIN_KINDS = ("builtin", "python")  # python: the training function named by train.fn
WEIGHT_DECAY_MODES = ("independent", "coupled")
CORPORA = ("shakespeare", "text", "tokens", "digits", "synthetic")
PATH_CORPORA = ("text", "tokens")  # data.path: a text file; a token folder (data prepare's)


def _check_function(section: str, key: str, kind: str, path: str | None) -> None:
    """``section.key`` ('package.module:function') is given with kind python, and only then."""
    require(
        (kind == "python") == (path is not None),
        f"{section}.{key} ('package.module:function') goes with {section}.kind: python, "
        "and only there",
    )
    require(
        path is None or bool(re.fullmatch(r"[\w.]+:\w+", str(path))),
        f"{section}.{key} must be 'package.module:function'; got {path!r}",
    )


def _one_of(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    listed = ", ".join(map(str, choices))
    require(value in choices, f"{name} must be one of {listed}; got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of one model. ``width`` is d_model (GPT) or the hidden width (MLP).

    ``input_size``/``output_size`` are the vocabulary (GPT) or features/classes (MLP); the
    data source fills them in when left at ``None``. ``readout_zero_init`` starts the readout
    weight at 0 (μP practice, Tensor Programs V App. D.2; see ``models.roles.Readout``).
    ``mask_seed`` ``None`` (the default) draws the sparse masks from the run's seed, so seeds
    vary the mask too; an integer fixes one mask for every seed. ``block`` (GPT only):
    ``gpt2`` or ``llama`` (RMSNorm, rotary positions, SwiGLU FFN of 2/3 the hidden width,
    no biases).
    """

    kind: str = "gpt"
    block: str = "gpt2"
    width: int = 128
    depth: int = 2
    heads: int = 4
    context: int = 128
    ffn_mult: int = 4
    input_size: int | None = None
    output_size: int | None = None
    tied_embeddings: bool = False
    bias: bool = False
    density: float = 1.0
    mask: str = "random"
    mask_block: int = 64
    mask_seed: int | None = None
    kernel: str = "auto"
    readout_zero_init: bool = False
    build: str | None = None

    def __post_init__(self) -> None:
        _one_of("model.kind", self.kind, MODEL_KINDS)
        _check_function("model", "build", self.kind, self.build)
        for name in ("width", "depth", "context", "ffn_mult"):
            value = getattr(self, name)
            require(
                isinstance(value, int) and value >= 1, f"model.{name} must be a positive integer"
            )
        require(isinstance(self.heads, int) and self.heads >= 1, "model.heads must be >= 1")
        if self.kind == "gpt":
            require(
                self.width % self.heads == 0,
                f"model.width ({self.width}) must be divisible by model.heads ({self.heads})",
            )
        _one_of("model.block", self.block, BLOCKS)
        if self.block == "llama":
            require(self.kind == "gpt", "model.block: llama needs model.kind: gpt")
            require(not self.bias, "model.block: llama has no biases (model.bias: false)")
            require(
                self.head_dim % 2 == 0,
                f"model.block: llama needs an even head size for rotary positions; "
                f"width {self.width} / heads {self.heads} = {self.head_dim}",
            )
        check_density("model.density", self.density)
        _one_of("model.mask", self.mask, MASK_KINDS)
        _one_of("model.mask_block", self.mask_block, BLOCK_SIZES)
        _one_of("model.kernel", self.kernel, KERNELS)
        require(
            self.mask_seed is None or (isinstance(self.mask_seed, int) and self.mask_seed >= 0),
            "model.mask_seed must be a non-negative integer, or null (the run's seed)",
        )
        for name in ("input_size", "output_size"):
            value = getattr(self, name)
            require(
                value is None or (isinstance(value, int) and value >= 1),
                f"model.{name} must be a positive integer",
            )

        require(
            not (self.readout_zero_init and self.tied_embeddings),
            "model.readout_zero_init needs an untied readout (tied_embeddings: false): "
            "zeroing a tied readout zeroes the embedding",
        )

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    def to_dict(self) -> dict[str, Any]:
        """Plain fields for YAML and hashes; ``readout_zero_init`` only when on and ``block``
        only when not gpt2, so every spec and run written before the options keeps its hash."""
        fields = dataclasses.asdict(self)
        if not self.readout_zero_init:
            del fields["readout_zero_init"]
        if self.block == "gpt2":
            del fields["block"]
        if self.build is None:
            del fields["build"]
        return fields

    @property
    def takes_tokens(self) -> bool:
        """A language model (token ids → logits): a gpt or a python model; an mlp is not."""
        return self.kind != "mlp"

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class DataConfig:
    """Where batches come from. ``path`` is required for ``corpus: text`` (a UTF-8 file) and
    ``corpus: tokens`` (a folder with train.bin, val.bin and meta.json)."""

    corpus: str = "shakespeare"
    path: str | None = None
    batch_size: int = 16
    seq_len: int = 128
    eval_batches: int = 8

    def __post_init__(self) -> None:
        _one_of("data.corpus", self.corpus, CORPORA)
        require(
            self.corpus not in PATH_CORPORA or bool(self.path),
            f"data.path is required for corpus: {self.corpus}",
        )
        for name in ("batch_size", "seq_len", "eval_batches"):
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 1, f"data.{name} must be >= 1")


@dataclass(frozen=True)
class TrainConfig:
    """Training budget and optimizer. μP/SμPar do not transfer across it; a target with its own
    budget moves the base HPs by a budget rule (:mod:`hptransfer.budget`). ``grad_clip``: the
    gradient's global norm is clipped to it each step; ``None`` (or 0, stored as ``None``)
    turns clipping off."""

    steps: int = 200
    warmup_steps: int = 0
    schedule: str = "cosine"
    final_lr_ratio: float = 0.1
    optimizer: str = "adamw"
    weight_decay_mode: str = "independent"
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    scale_eps: bool = False
    momentum: float = 0.9
    muon_momentum: float = 0.95
    muon_masked_update: str = "mask"  # mask | rescale (docs/muon.md § Density)
    grad_clip: float | None = 1.0
    eval_every: int = 0
    divergence_factor: float = 3.0
    kind: str = "builtin"
    fn: str | None = None

    def __post_init__(self) -> None:
        _one_of("train.kind", self.kind, TRAIN_KINDS)
        _check_function("train", "fn", self.kind, self.fn)
        require(isinstance(self.steps, int) and self.steps >= 1, "train.steps must be >= 1")
        require(
            isinstance(self.warmup_steps, int) and 0 <= self.warmup_steps <= self.steps,
            "train.warmup_steps must be in [0, train.steps]",
        )
        _one_of("train.schedule", self.schedule, SCHEDULES)
        _one_of("train.optimizer", self.optimizer, OPTIMIZERS)
        _one_of("train.weight_decay_mode", self.weight_decay_mode, WEIGHT_DECAY_MODES)
        require(0 <= self.final_lr_ratio <= 1, "train.final_lr_ratio must be in [0, 1]")
        require(self.eps > 0, "train.eps must be > 0")
        require(all(0 <= b < 1 for b in self.betas), "train.betas must be in [0, 1)")
        require(self.momentum >= 0, "train.momentum must be >= 0")
        require(0 <= self.muon_momentum < 1, "train.muon_momentum must be in [0, 1)")
        _one_of("train.muon_masked_update", self.muon_masked_update, MUON_MASKED_UPDATES)
        self._check_optimizer_settings()
        require(
            self.grad_clip is None or self.grad_clip >= 0,
            "train.grad_clip must be >= 0 (0 or null: no clipping)",
        )
        if self.grad_clip == 0:  # one spelling of "off", so both hash alike
            object.__setattr__(self, "grad_clip", None)
        require(self.eval_every >= 0, "train.eval_every must be >= 0 (0: only at the end)")
        require(self.divergence_factor > 1, "train.divergence_factor must be > 1")

    def _check_optimizer_settings(self) -> None:
        """A setting of another optimizer than the one chosen is refused: it would do nothing."""
        defaults = TrainConfig.__dataclass_fields__
        own = {"momentum": "sgd", "muon_momentum": "muon", "muon_masked_update": "muon"}
        for name, optimizer in own.items():
            require(
                self.optimizer == optimizer or getattr(self, name) == defaults[name].default,
                f"train.{name} is {optimizer}'s setting, not {self.optimizer}'s"
                + ("; Muon's momentum is train.muon_momentum" if name == "momentum" else ""),
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain fields for YAML and hashes; ``muon_momentum`` only when the optimizer is Muon
        and ``muon_masked_update`` only when not ``mask``, so every spec and run written before
        them keeps its hash."""
        fields = dataclasses.asdict(self)
        if self.optimizer != "muon":
            del fields["muon_momentum"]
        if self.muon_masked_update == "mask":
            del fields["muon_masked_update"]
        if self.kind == "builtin":
            del fields["kind"], fields["fn"]
        return fields


@dataclass(frozen=True)
class RunConfig:
    """One training run: everything needed to reproduce it."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    hps: BaseHPs = field(default_factory=BaseHPs)
    base: BaseShape = field(default_factory=BaseShape)
    parameterization: str = "supar"
    seed: int = 0

    def __post_init__(self) -> None:
        p = parameterization(self.parameterization)
        require(
            not (p.depth_rules and self.model.kind == "mlp"),
            f"parameterization {self.parameterization}: depth rules need residual blocks, "
            "and an mlp has none (use model.kind gpt)",
        )
        # One form per base and name (see BaseShape.heads), so equal runs hash equal.
        object.__setattr__(self, "parameterization", p.name)
        for axis in ("heads", "depth"):
            if getattr(self.base, axis) == getattr(self.model, axis):
                object.__setattr__(self, "base", dataclasses.replace(self.base, **{axis: None}))

    @property
    def multipliers(self) -> Multipliers:
        """The run-wide m_d, m_rho (of its sparse layers) and m_L."""
        return self.base.multipliers(self.model.width, self.model.density, self.model.depth)

    def retarget(self, **changes: Any) -> RunConfig:
        """This run with its model changed (``--to``); the base keeps its own head count and
        depth. An mlp's depth is refused: it has no residual blocks to scale."""
        require(
            not ("depth" in changes and self.model.kind == "mlp"),
            "--to depth: an mlp has no residual blocks, so depth does not transfer "
            "(depth transfer needs model.kind gpt)",
        )
        base = dataclasses.replace(
            self.base,
            heads=self.base.heads or self.model.heads,
            depth=self.base.depth or self.model.depth,
        )
        return dataclasses.replace(self, model=self.model.replace(**changes), base=base)


def parse_fraction(raw: str) -> float:
    """Accept ``0.125`` and ``1/8``."""
    num, slash, den = raw.partition("/")
    return float(num) / float(den) if slash else float(raw)

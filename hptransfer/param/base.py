"""The base: the proxy shape the base HPs were tuned at, the base HPs, and the multipliers.

Every scaling rule is a power law in the width multiplier m_d = width / base width, the
density multiplier m_rho = density / base density and the depth multiplier m_L = depth /
base depth (residual blocks); :meth:`BaseShape.multipliers` computes them for one layer (each
parameter uses its own layer's density). The base also records its head count, since μP's
attention scale needs the base head size d₀ (``docs/parameterizations.md``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from hptransfer.errors import ConfigError


def require(ok: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``ok``."""
    if not ok:
        raise ConfigError(message)


def check_density(name: str, value: Any) -> None:
    require(
        isinstance(value, (int, float)) and 0 < value <= 1 and math.isfinite(value),
        f"{name} must be in (0, 1]; got {value!r}",
    )


def check_depth(name: str, value: Any, optional: bool = False) -> None:
    """A number of residual blocks: a positive integer (or ``None`` when ``optional``)."""
    require(
        (optional and value is None)
        or (isinstance(value, int) and not isinstance(value, bool) and value >= 1),
        f"{name} must be a positive integer; got {value!r}",
    )


@dataclass(frozen=True)
class Multipliers:
    """SμPar's width multiplier m_d and density multiplier m_rho; CompleteP's depth
    multiplier m_L."""

    width: float = 1.0
    density: float = 1.0
    depth: float = 1.0


@dataclass(frozen=True)
class BaseShape:
    """The proxy shape the base HPs were tuned at.

    ``heads``: the base's attention heads, which fix d₀ = width / heads. ``None`` means the
    base has the run's own head count (every sweep: heads are not a sweep axis); a run whose
    heads differ from the base's must name them (:meth:`hptransfer.config.RunConfig.retarget`
    does). ``None`` keeps sweeps' spec and run hashes as they were before heads were recorded.
    ``depth``: the base's residual blocks, which fix m_L; ``None`` likewise means the run's
    own depth (m_L = 1).
    """

    width: int = 128
    density: float = 1.0
    heads: int | None = None
    depth: int | None = None

    def __post_init__(self) -> None:
        require(isinstance(self.width, int) and self.width >= 1, "base.width must be >= 1")
        check_density("base.density", self.density)
        require(
            self.heads is None or (isinstance(self.heads, int) and self.heads >= 1),
            f"base.heads must be a positive integer; got {self.heads!r}",
        )
        check_depth("base.depth", self.depth, optional=True)

    def multipliers(
        self, width: int, density: float = 1.0, depth: int | None = None
    ) -> Multipliers:
        """m_d, m_rho and m_L of a layer of ``density`` in a model of ``width`` and ``depth``
        (``None``: the base's depth)."""
        m_depth = 1.0 if depth is None or self.depth is None else depth / self.depth
        return Multipliers(width=width / self.width, density=density / self.density, depth=m_depth)

    def head_dim(self, run_heads: int) -> int:
        """The base head size d₀ (``run_heads`` when the base does not record its own)."""
        return max(1, self.width // (self.heads or run_heads))

    def to_dict(self) -> dict[str, Any]:
        """Plain fields for YAML and hashes; ``heads`` and ``depth`` only when recorded."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class BaseHPs:
    """Base hyperparameters (σ, η, α_in, α_out, weight decay, α_attn, κ), tuned once at the
    base shape. ``alpha_attn`` multiplies the attention logits on top of the parameterization's
    scale (1/√d_head under SP, √d₀/d_head under μP/SμPar). ``lr_emb_ratio`` κ multiplies the
    LR of the embeddings and the readout (η_emb = κ·η, on top of their rule's factor); hidden
    weights and vectors keep η."""

    lr: float = 2.0**-7
    init_std: float = 0.02
    alpha_in: float = 1.0
    alpha_out: float = 1.0
    weight_decay: float = 0.0
    alpha_attn: float = 1.0
    lr_emb_ratio: float = 1.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            require(
                isinstance(value, (int, float)) and math.isfinite(value),
                f"hps.{f.name} must be a finite number; got {value!r}",
            )
        for name in ("lr", "init_std", "alpha_in", "alpha_out", "alpha_attn", "lr_emb_ratio"):
            require(getattr(self, name) > 0, f"hps.{name} must be > 0; got {getattr(self, name)}")
        require(self.weight_decay >= 0, "hps.weight_decay must be >= 0")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_dict(self) -> dict[str, float]:
        """Plain fields for YAML and hashes; those added later (:data:`OMITTED_AT_DEFAULT`)
        only when set, so every spec and run written before them keeps its hash."""
        return {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if not (k in OMITTED_AT_DEFAULT and v == OMITTED_AT_DEFAULT[k])
        }


OMITTED_AT_DEFAULT = {"alpha_attn": BaseHPs.alpha_attn, "lr_emb_ratio": BaseHPs.lr_emb_ratio}


@dataclass(frozen=True)
class BudgetMultipliers:
    """The training budget against the proxy's: m_D = tokens / proxy tokens (the horizon),
    m_B = batch / proxy batch (rows per step)."""

    tokens: float = 1.0
    batch: float = 1.0

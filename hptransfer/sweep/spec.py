"""What a sweep is: the frozen :class:`SweepSpec` and its parts, their normal form and hash.

Read from YAML by :mod:`hptransfer.sweep.parse`; the YAML format, with its defaults, is
documented in ``sweeps/proxy.yaml``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from hptransfer.budget import at_batch, at_horizon
from hptransfer.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from hptransfer.param import BaseHPs, BaseShape
from hptransfer.runtime.resources import RayOptions, Resources, TargetConfig
from hptransfer.trackers import Tracker

# Keys that say where and how fast a sweep runs, or where it is followed, not what it
# computes: not hashed.
UNHASHED_KEYS = ("schema_version", "resources", "ray", "target", "log")
# The spec format's version, written into results/<sweep>/spec.yaml. Version 2: an absent or
# null model.mask_seed draws masks per run seed. Version 1 (mask_seed fixed, default 0) is
# migrated on read. A spec without the key (a hand-written sweep file, or a spec.yaml written
# before versioning, which lists every field) is read as the current version.
SPEC_VERSION = 2


@dataclass(frozen=True)
class HPRange:
    """One searched hyperparameter: a discrete set (``values``) or a continuous range.

    ``log2_range`` (with ``step``) and ``values`` are discrete: a grid, or Optuna's
    categorical choice. ``low``/``high`` (optionally ``log``) is continuous: Optuna only.
    """

    name: str
    values: tuple[float, ...] = ()
    log2_range: tuple[float, float] | None = None
    step: float | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False

    @property
    def is_discrete(self) -> bool:
        return bool(self.values)

    def to_dict(self) -> dict[str, Any]:
        if self.log2_range is not None:
            return {"log2_range": list(self.log2_range), "step": self.step}
        if self.values:
            return {"values": list(self.values)}
        return {"low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class SliceSpec:
    """After the search, one HP on a finer grid at each cell's best point.

    ``hp`` takes the values ``best · 2^(k·step)`` for ``|k·step| <= octaves``, the other HPs
    stay at the best point (the lowest mean objective over the search's own runs), and every
    value is trained with ``seeds`` (default: the sweep's seeds).
    """

    hp: str = "lr"
    octaves: float = 1.0
    step: float = 0.5
    seeds: tuple[int, ...] = ()

    def offsets(self) -> tuple[float, ...]:
        """The log2 offsets from the best value, in increasing order."""
        n = math.floor(self.octaves / self.step + 1e-9)
        return tuple(k * self.step for k in range(-n, n + 1))


@dataclass(frozen=True)
class SearchSpec:
    """What to search and how: a full grid, or ``num_samples`` Optuna trials per cell; then
    optionally a finer ``slice`` of one HP at each cell's best point."""

    space: tuple[HPRange, ...]
    algorithm: str = "grid"
    sampler: str = "tpe"
    num_samples: int = 16
    seed: int = 0
    slice: SliceSpec | None = None
    # Optuna's study storage: None, a JournalStorage file in the sweep's folder; else an RDB
    # URL (postgresql://user@host/db, sqlite:///path). Where, not what: never hashed.
    storage: str | None = None
    # Grid only: rounds of growing the grid past edge optima (hptransfer.sweep.extend) that
    # `hptransfer sweep` runs; 0: none. How far to look, not what a run computes: not hashed.
    auto_extend: int = 0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(hp.name for hp in self.space)


@dataclass(frozen=True)
class AshaSpec:
    """ASHA early stopping on validation loss, in training steps (needs train.eval_every)."""

    grace_period: int = 1
    reduction_factor: float = 2.0
    brackets: int = 1


@dataclass(frozen=True)
class SweepSpec:
    """A whole sweep: the cross product parameterizations × widths × densities × depths ×
    search × seeds.

    ``model.width``/``model.density``/``model.depth`` of the YAML become
    ``widths``/``densities``/``depths``; ``model`` holds the first of each. Several depths
    make the first the base depth unless ``base.depth`` says otherwise. A list
    ``model.readout_zero_init: [false, true]`` searches the readout's init at the base
    (``zero_inits``; ``fit`` picks the better one). ``model.shapes`` (``shapes``) lists
    (width, density) pairs trained in place of the widths × densities product (``widths`` and
    ``densities`` then hold their distinct values).
    """

    name: str
    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    hps: BaseHPs
    base: BaseShape
    parameterizations: tuple[str, ...]
    widths: tuple[int, ...]
    densities: tuple[float, ...]
    search: SearchSpec
    seeds: tuple[int, ...] = (0,)
    asha: AshaSpec | None = None
    resources: Resources = field(default_factory=Resources)
    ray: RayOptions = field(default_factory=RayOptions)
    target: TargetConfig | None = None  # how `transfer` trains targets on Ray Train
    log: tuple[Tracker, ...] = ()  # experiment trackers of the sweep and its transfers
    horizons: tuple[int, ...] = ()  # train.steps as a list: () is (train.steps,)
    depths: tuple[int, ...] = ()  # model.depth as a list: () is (model.depth,)
    # data.batch_size as a list: () is (data.batch_size,); every batch trains the first's tokens
    batches: tuple[int, ...] = ()
    zero_inits: tuple[bool, ...] = ()  # model.readout_zero_init as a list: () is the model's
    shapes: tuple[tuple[int, float], ...] = ()  # model.shapes: () is widths × densities

    @property
    def model_shapes(self) -> list[tuple[int, float]]:
        """The (width, density) pairs trained: ``shapes``, or every width at every density."""
        return list(self.shapes) or [(w, d) for w in self.widths for d in self.densities]

    @property
    def steps(self) -> tuple[int, ...]:
        """The training horizons swept, in steps (``train.steps`` holds the first)."""
        return self.horizons or (self.train.steps,)

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes swept (``data.batch_size`` holds the first: the base batch)."""
        return self.batches or (self.data.batch_size,)

    @property
    def budgets(self) -> list[tuple[TrainConfig, DataConfig]]:
        """The training budgets swept: one per horizon, or one per batch size at the base
        batch's tokens and validation windows (:func:`~hptransfer.budget.at_batch`)."""
        return [
            at_batch(at_horizon(self.train, steps), self.data, batch)
            for steps in self.steps
            for batch in self.batch_sizes
        ]

    @property
    def cells(self) -> list[RunConfig]:
        """One run template per (parameterization, width, density, depth, readout init,
        budget), seed 0, fixed HPs."""
        return [
            RunConfig(
                model=self.model.replace(
                    width=width, density=density, depth=depth, readout_zero_init=zero
                ),
                data=data,
                train=train,
                hps=self.hps,
                base=self.base,
                parameterization=parameterization,
            )
            for parameterization in self.parameterizations
            for width, density in self.model_shapes
            for depth in self.depths or (self.model.depth,)
            for zero in self.zero_inits or (self.model.readout_zero_init,)
            for train, data in self.budgets
        ]

    def to_dict(self) -> dict[str, Any]:
        """The normalised spec: every default filled in, plain YAML/JSON types only."""
        model = self.model.to_dict()
        if self.shapes:  # absent otherwise: specs before model.shapes keep their hash
            del model["width"], model["density"]
            model["shapes"] = [list(shape) for shape in self.shapes]
        else:
            model.update(width=list(self.widths), density=list(self.densities))
        if len(self.depths) > 1:  # one depth stays an int: specs before the axis keep their hash
            model["depth"] = list(self.depths)
        if len(self.zero_inits) > 1:
            model["readout_zero_init"] = list(self.zero_inits)
        search = dataclasses.asdict(self.search)
        search["space"] = {hp.name: hp.to_dict() for hp in self.search.space}
        if self.search.storage is None:
            del search["storage"]  # absent unless given, like slice
        if not self.search.auto_extend:
            del search["auto_extend"]
        if self.search.slice is None:
            del search["slice"]  # absent, as before slices existed: old sweeps keep their hash
        else:
            search["slice"]["seeds"] = list(self.search.slice.seeds)
        train = self.train.to_dict()
        train["betas"] = list(self.train.betas)
        if self.horizons:  # a single horizon stays a number: old sweeps keep their hash
            train["steps"] = list(self.horizons)
        data = dataclasses.asdict(self.data)
        if self.batches:  # likewise one batch size
            data["batch_size"] = list(self.batches)
        return {
            "schema_version": SPEC_VERSION,
            "name": self.name,
            "model": model,
            "data": data,
            "train": train,
            "parameterization": list(self.parameterizations),
            "base": self.base.to_dict(),
            "hps": {k: v for k, v in self.hps.to_dict().items() if k not in self.search.names},
            "search": search,
            "seeds": list(self.seeds),
            "asha": None if self.asha is None else dataclasses.asdict(self.asha),
            "resources": dataclasses.asdict(self.resources),
            "ray": dataclasses.asdict(self.ray),
            # absent unless given: specs written before targets had a section stay the same
            **({} if self.target is None else {"target": dataclasses.asdict(self.target)}),
            **({"log": [tracker.to_yaml() for tracker in self.log]} if self.log else {}),
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @property
    def hash(self) -> str:
        """Stable hash of what the sweep computes (resources and Ray address excluded)."""
        content = {k: v for k, v in self.to_dict().items() if k not in UNHASHED_KEYS}
        content["search"].pop("storage", None)
        content["search"].pop("auto_extend", None)
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:12]


def diff_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two normalised spec dicts."""
    changed = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += diff_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key}")
    return changed

"""Sweep specification: YAML in, a frozen, validated :class:`SweepSpec` out.

Every error names the file and the key (``sweeps/x.yaml: search.space.lr.low: ...``);
unknown keys get a "did you mean" suggestion. The YAML format, with its defaults, is
documented in ``sweeps/proxy.yaml``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from hptransfer.budget import at_batch, at_horizon
from hptransfer.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from hptransfer.errors import ConfigError, FormatVersionError, did_you_mean
from hptransfer.param import BaseHPs, BaseShape, parameterization
from hptransfer.quadratic import needed_points
from hptransfer.runtime.resources import RayOptions, Resources, TargetConfig
from hptransfer.store.location import Location, location
from hptransfer.trackers import Tracker, parse_trackers

ALGORITHMS = ("grid", "optuna")
SAMPLERS = ("tpe", "gp", "cmaes", "random")
TOP_KEYS = (
    "schema_version", "name", "model", "data", "train", "parameterization", "base", "hps",
    "search", "seeds", "asha", "resources", "ray", "target", "log",
)  # fmt: skip
# Keys that say where and how fast a sweep runs, or where it is followed, not what it
# computes: not hashed.
UNHASHED_KEYS = ("schema_version", "resources", "ray", "target", "log")
# The spec format's version, written into results/<sweep>/spec.yaml. Version 2: an absent or
# null model.mask_seed draws masks per run seed. Version 1 (mask_seed fixed, default 0) is
# migrated on read. A spec without the key (a hand-written sweep file, or a spec.yaml written
# before versioning, which lists every field) is read as the current version.
SPEC_VERSION = 2
# A sweep's name is its results folder: portable characters only.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# A grid is listed in full before it runs: beyond this many runs it is a typo, not a plan.
MAX_GRID_RUNS = 100_000
MAX_EXTEND_ROUNDS = 16  # search.auto_extend: each round adds a grid face
INT64 = 2**63  # integers are stored in int64 Parquet columns


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
    (``zero_inits``; ``fit`` picks the better one).
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
            for width in self.widths
            for density in self.densities
            for depth in self.depths or (self.model.depth,)
            for zero in self.zero_inits or (self.model.readout_zero_init,)
            for train, data in self.budgets
        ]

    def to_dict(self) -> dict[str, Any]:
        """The normalised spec: every default filled in, plain YAML/JSON types only."""
        model = self.model.to_dict()
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


def load_spec(path: str | Location) -> SweepSpec:
    """Read and validate a sweep YAML file (local, or in a results folder in object storage);
    raises ConfigError naming the file and key."""
    path = location(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"sweep spec {path} not found") from None
    except OSError as exc:
        raise ConfigError(f"sweep spec {path} is unreadable: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"sweep spec {path} is not UTF-8 text (byte {exc.start})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    return parse_spec(raw, source=str(path))


def parse_spec(raw: Any, source: str = "<spec>") -> SweepSpec:
    """Validate an already-parsed YAML document (a mapping) into a SweepSpec."""
    return _Parser(source).spec(raw)


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


class _Parser:
    """Turns a YAML mapping into a SweepSpec; every error names ``source`` and the key."""

    def __init__(self, source: str):
        self.source = source
        self.fixed_hps: tuple[str, ...] = ()

    def fail(self, key: str, message: str) -> typing.NoReturn:
        raise ConfigError(f"{self.source}: {key}: {message}")

    def spec(self, raw: Any) -> SweepSpec:
        if raw is None:
            raise ConfigError(f"{self.source}: the file is empty; expected a sweep mapping")
        root = self.migrate(self.mapping("(top level)", raw, TOP_KEYS))
        if "name" not in root:
            self.fail("name", "missing; every sweep needs a name (its results folder)")
        name = self.coerce("name", root["name"], str)
        if not NAME_PATTERN.fullmatch(name):
            self.fail(
                "name",
                f"{_describe(name)} is not a usable folder name: use letters, digits, '.', '_' "
                "and '-' (at most 100, starting with a letter or digit)",
            )
        model, widths, densities, depths, zero_inits = self.model(root.get("model", {}))
        train, horizons = self.train(root.get("train", {}))
        data, batches = self.data(root.get("data", {}), train, horizons)
        base_raw = self.mapping("base", root.get("base", {}), _fields(BaseShape))
        if len(depths) > 1:
            base_raw = {"depth": depths[0], **base_raw}
        search = self.search(root.get("search"))
        hps_raw = self.mapping("hps", root.get("hps", {}), _fields(BaseHPs))
        self.fixed_hps = tuple(hps_raw)
        for hp_name in set(hps_raw) & set(search.names):
            self.fail(f"hps.{hp_name}", f"is also searched (search.space.{hp_name}); keep one")
        spec = SweepSpec(
            name=name,
            model=model,
            data=data,
            train=train,
            hps=self.build("hps", BaseHPs, hps_raw),
            base=self.build("base", BaseShape, {"width": widths[0], **base_raw}),
            parameterizations=self.parameterizations(root.get("parameterization", "supar")),
            widths=widths,
            densities=densities,
            depths=depths if len(depths) > 1 else (),
            zero_inits=zero_inits if len(zero_inits) > 1 else (),
            search=search,
            seeds=self.distinct("seeds", self.number_list("seeds", root.get("seeds", [0]), int)),
            asha=None if root.get("asha") is None else self.build("asha", AshaSpec, root["asha"]),
            resources=self.build("resources", Resources, root.get("resources", {})),
            ray=self.build("ray", RayOptions, root.get("ray", {})),
            target=None
            if root.get("target") is None
            else self.build("target", TargetConfig, root["target"]),
            horizons=horizons,
            batches=batches,
            log=self.checked(lambda: parse_trackers(root.get("log"))),
        )
        self.cross_checks(spec)
        return spec

    def migrate(self, root: dict[str, Any]) -> dict[str, Any]:
        """The document in the current format (an older version upgraded in memory); a newer
        or unknown version refused in one line (nothing is touched)."""
        version = root.get("schema_version", SPEC_VERSION)
        if version == SPEC_VERSION:
            return root
        if version != 1:
            raise FormatVersionError(
                f"{self.source}: schema_version {version!r} is not one this hptransfer reads "
                f"(1 to {SPEC_VERSION}): upgrade hptransfer to read it"
            )
        model = root.get("model", {})
        if isinstance(model, dict) and "mask_seed" not in model:
            model = {**model, "mask_seed": 0}  # version 1's default: one mask for every seed
        return {**root, "schema_version": SPEC_VERSION, "model": model}

    def cross_checks(self, spec: SweepSpec) -> None:
        self.check_search(spec)
        self.check_asha(spec)
        resources = spec.resources
        if resources.cpus_per_trial < 1:
            self.fail("resources.cpus_per_trial", "must be >= 1")
        if not resources.gpus_per_trial >= 0:  # NaN too
            self.fail("resources.gpus_per_trial", "must be >= 0")
        if resources.max_concurrent is not None and resources.max_concurrent < 1:
            self.fail("resources.max_concurrent", "must be >= 1")
        if resources.max_retries < 0:
            self.fail("resources.max_retries", "must be >= 0")

    def check_search(self, spec: SweepSpec) -> None:
        search = spec.search
        if "lr" not in search.names and "lr" not in self.fixed_hps:
            self.fail(
                "search.space",
                "has no lr: the learning rate matters most and transfers with the rest; search "
                "it (lr: {log2_range: [-10, -4]}) or fix it explicitly with hps.lr",
            )
        self.check_joint(search)
        cmaes = search.algorithm == "optuna" and search.sampler == "cmaes"
        for hp in search.space:
            key = f"search.space.{hp.name}"
            if search.algorithm == "grid" and not hp.is_discrete:
                self.fail(key, "low/high is for algorithm: optuna; a grid needs log2_range/values")
            if cmaes and hp.is_discrete:
                self.fail(key, "sampler cmaes needs continuous ranges (low/high)")
        if search.algorithm == "grid":
            runs = math.prod(len(hp.values) for hp in search.space) * len(spec.cells)
            if runs * len(spec.seeds) > MAX_GRID_RUNS:
                self.fail(
                    "search.space",
                    f"the grid has {runs * len(spec.seeds):,} runs (more than {MAX_GRID_RUNS:,}); "
                    "narrow the ranges or use algorithm: optuna",
                )

    def check_joint(self, search: SearchSpec) -> None:
        """A search of several HPs must give the joint fit enough points."""
        d = len(search.space)
        if d < 2:
            return
        needed = needed_points(d)
        names = ", ".join(search.names)
        if search.algorithm == "optuna" and search.num_samples < needed:
            self.fail(
                "search.num_samples",
                f"{search.num_samples} points cannot locate the joint optimum of {d} HPs "
                f"({names}): it needs at least {needed}",
            )
        if search.algorithm == "grid":
            for hp in search.space:
                if len(hp.values) < 3:
                    self.fail(
                        f"search.space.{hp.name}",
                        f"has {len(hp.values)} value(s): a joint fit of {names} needs at least "
                        "3 per HP (a quadratic along each)",
                    )

    def check_asha(self, spec: SweepSpec) -> None:
        asha = spec.asha
        if asha is None:
            return
        if spec.train.eval_every == 0:
            self.fail("asha", "needs intermediate results: set train.eval_every > 0")
        if spec.horizons or spec.batches:
            self.fail("asha", "needs a single budget (train.steps or data.batch_size is a list)")
        if spec.search.algorithm == "optuna" and len(spec.seeds) > 1:
            self.fail("asha", "with algorithm optuna needs a single seed (seeds: [0])")
        if asha.grace_period < 1 or asha.brackets < 1:
            self.fail("asha", "grace_period and brackets must be >= 1")
        if not asha.reduction_factor > 1:  # NaN too
            self.fail("asha.reduction_factor", "must be > 1")

    # -- sections -------------------------------------------------------------------------

    def model(
        self, raw: Any
    ) -> tuple[ModelConfig, tuple[int, ...], tuple[float, ...], tuple[int, ...], tuple[bool, ...]]:
        """The model template and the swept widths, densities, depths and readout inits (each
        checked)."""
        section = dict(self.mapping("model", raw, _fields(ModelConfig)))
        widths = self.distinct(
            "model.width", self.number_list("model.width", section.pop("width", 128), int)
        )
        densities = self.distinct(
            "model.density", self.number_list("model.density", section.pop("density", 1.0), float)
        )
        depths = self.distinct(
            "model.depth", self.number_list("model.depth", section.pop("depth", 2), int)
        )
        zero_inits = self.distinct(
            "model.readout_zero_init",
            self.number_list(
                "model.readout_zero_init", section.pop("readout_zero_init", False), bool
            ),
        )
        model = self.build(
            "model", ModelConfig, section, width=widths[0], density=densities[0], depth=depths[0],
            readout_zero_init=any(zero_inits),  # checked against tied embeddings if ever on
        )  # fmt: skip
        for width in widths:
            for density in densities:
                for depth in depths:
                    self.checked(
                        lambda w=width, d=density, n=depth: model.replace(
                            width=w, density=d, depth=n
                        )
                    )
        return model.replace(readout_zero_init=zero_inits[0]), widths, densities, depths, zero_inits

    def train(self, raw: Any) -> tuple[TrainConfig, tuple[int, ...]]:
        """The training template (at the first horizon) and the horizons when ``steps`` is a
        list (``()`` for a single one)."""
        section = dict(self.mapping("train", raw, _fields(TrainConfig)))
        steps = section.pop("steps", TrainConfig.steps)
        horizons = self.distinct("train.steps", self.number_list("train.steps", steps, int))
        train = self.build("train", TrainConfig, section, steps=horizons[0])
        for n in horizons:
            if n < 1:
                self.fail("train.steps", f"must be >= 1; got {n}")
        return train, horizons if isinstance(steps, list) and len(horizons) > 1 else ()

    def data(
        self, raw: Any, train: TrainConfig, horizons: tuple[int, ...]
    ) -> tuple[DataConfig, tuple[int, ...]]:
        """The data template (at the first batch size) and the batch sizes when
        ``batch_size`` is a list (``()`` for a single one); each trains the first's tokens."""
        section = dict(self.mapping("data", raw, _fields(DataConfig)))
        sizes = section.pop("batch_size", DataConfig.batch_size)
        batches = self.distinct("data.batch_size", self.number_list("data.batch_size", sizes, int))
        data = self.build("data", DataConfig, section, batch_size=batches[0])
        if not isinstance(sizes, list) or len(batches) < 2:
            return data, ()
        if horizons:
            self.fail("data.batch_size", "is a list and so is train.steps: sweep one of them")
        rows = train.steps * batches[0]  # every batch size trains the first's tokens
        steps: dict[int, int] = {}
        for batch in batches:
            if batch > rows:
                self.fail(
                    "data.batch_size",
                    f"{batch} rows is more than the {train.steps} steps × {batches[0]} rows "
                    "every batch size trains (the first's tokens)",
                )
            other = steps.setdefault(rows // batch, batch)
            if other != batch:  # the fit tells the batch sizes apart by their steps
                self.fail(
                    "data.batch_size",
                    f"{other} and {batch} both train {rows // batch} steps; "
                    "use batch sizes further apart (or more train.steps)",
                )
        return data, batches

    def search(self, raw: Any) -> SearchSpec:
        keys = _fields(SearchSpec)
        section = self.mapping("search", raw if raw is not None else {}, keys)
        space_raw = self.mapping("search.space", section.get("space") or {}, BaseHPs.names())
        if not space_raw:
            self.fail(
                "search.space",
                "is empty: give at least one HP to search, e.g. lr: {log2_range: [-10, -4]}",
            )
        space = tuple(self.hp_range(name, value) for name, value in space_raw.items())
        rest = {k: v for k, v in section.items() if k not in ("space", "slice")}
        cut = None if section.get("slice") is None else self.slice(section["slice"], space)
        search = self.build("search", SearchSpec, rest, space=space, slice=cut)
        if search.algorithm not in ALGORITHMS:
            self.fail("search.algorithm", f"must be one of {', '.join(ALGORITHMS)}")
        if search.sampler not in SAMPLERS:
            self.fail("search.sampler", f"must be one of {', '.join(SAMPLERS)}")
        if search.num_samples < 1:
            self.fail("search.num_samples", "must be >= 1")
        if not 0 <= search.auto_extend <= MAX_EXTEND_ROUNDS:
            self.fail("search.auto_extend", f"must be in [0, {MAX_EXTEND_ROUNDS}] (rounds)")
        if search.auto_extend and search.algorithm != "grid":
            self.fail("search.auto_extend", "grows a grid: it needs algorithm: grid")
        if not 0 <= search.seed < 2**32:  # numpy's seed range, which Optuna's samplers use
            self.fail("search.seed", f"must be in [0, 2^32); got {search.seed}")
        if search.storage is not None and "://" not in search.storage:
            self.fail(
                "search.storage",
                f"{search.storage!r} is not a database URL (e.g. postgresql://user@host/db); "
                "leave it out for a journal file in the sweep's folder",
            )
        return search

    def slice(self, raw: Any, space: tuple[HPRange, ...]) -> SliceSpec:
        section = dict(self.mapping("search.slice", raw, _fields(SliceSpec)))
        seeds = section.pop("seeds", None)
        cut = self.build("search.slice", SliceSpec, section)
        if seeds is not None:
            numbers = self.number_list("search.slice.seeds", seeds, int)
            cut = dataclasses.replace(cut, seeds=self.distinct("search.slice.seeds", numbers))
        if cut.hp not in {hp.name for hp in space}:
            self.fail("search.slice.hp", f"{cut.hp!r} is not searched (search.space)")
        if not (cut.step > 0 and cut.octaves >= cut.step):  # NaN too
            self.fail("search.slice", f"needs step > 0 and octaves >= step; got {cut}")
        if cut.octaves / cut.step > 50:
            self.fail("search.slice", "gives more than 101 values; widen step or narrow octaves")
        return cut

    def hp_range(self, name: str, raw: Any) -> HPRange:
        key = f"search.space.{name}"
        keys = ("log2_range", "step", "values", "low", "high", "log")
        spec = self.mapping(key, raw, keys)
        forms = [form for form in ("log2_range", "values", "low") if form in spec]
        if len(forms) != 1:
            self.fail(key, "give exactly one of log2_range: [lo, hi], values: [...], low/high")
        if "log2_range" in spec:
            hp = self.log2_range(key, name, spec)
        elif "values" in spec:
            values = self.number_list(f"{key}.values", spec["values"], float)
            hp = HPRange(name, values=values)
        else:
            hp = self.continuous(key, name, spec)
        self.check_hp_values(key, hp)
        return hp

    def log2_range(self, key: str, name: str, spec: dict[str, Any]) -> HPRange:
        pair = self.number_list(f"{key}.log2_range", spec["log2_range"], float)
        if len(pair) != 2:
            self.fail(f"{key}.log2_range", "expected [lo, hi] (log2 exponents)")
        step = self.coerce(f"{key}.step", spec.get("step", 0.5), float)
        if not step > 0:
            self.fail(f"{key}.step", f"must be > 0; got {step}")
        lo, hi = pair
        if hi < lo:
            self.fail(f"{key}.log2_range", f"is empty: hi ({hi}) < lo ({lo})")
        if not -1000 <= lo <= hi <= 1000:  # NaN too; 2^±1000 is still a finite float
            self.fail(f"{key}.log2_range", f"expected exponents within ±1000; got [{lo}, {hi}]")
        count = math.floor((hi - lo) / step + 1e-9) + 1
        if count > MAX_GRID_RUNS:
            self.fail(f"{key}.step", f"gives {count:,} values; expected at most {MAX_GRID_RUNS:,}")
        values = tuple(2.0 ** (lo + i * step) for i in range(count))
        return HPRange(name, values=values, log2_range=(lo, hi), step=step)

    def continuous(self, key: str, name: str, spec: dict[str, Any]) -> HPRange:
        if "high" not in spec:
            self.fail(f"{key}.high", "missing (low/high come together)")
        low = self.coerce(f"{key}.low", spec["low"], float)
        high = self.coerce(f"{key}.high", spec["high"], float)
        log = self.coerce(f"{key}.log", spec.get("log", False), bool)
        if not low < high:
            self.fail(key, f"empty range: low ({low}) must be < high ({high})")
        if log and low <= 0:
            self.fail(f"{key}.low", f"a log range needs low > 0; got {low}")
        return HPRange(name, low=low, high=high, log=log)

    def check_hp_values(self, key: str, hp: HPRange) -> None:
        bounds = [*hp.values, *(v for v in (hp.low, hp.high) if v is not None)]
        for value in bounds:
            if not math.isfinite(value):
                self.fail(key, f"values must be finite; got {value}")
            if hp.name == "weight_decay" and value < 0:
                self.fail(key, f"weight_decay must be >= 0; got {value}")
            if hp.name != "weight_decay" and value <= 0:
                self.fail(key, f"{hp.name} must be > 0; got {value}")

    def parameterizations(self, raw: Any) -> tuple[str, ...]:
        names = tuple(raw) if isinstance(raw, list) else (raw,)
        if not names:
            self.fail("parameterization", "is empty")
        for name in names:
            try:
                parameterization(name)
            except ConfigError as exc:
                self.fail("parameterization", str(exc))
        if len(set(names)) != len(names):
            self.fail("parameterization", "lists a parameterization twice")
        return names

    # -- generic helpers ------------------------------------------------------------------

    def mapping(self, key: str, raw: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(raw, dict):
            self.fail(key, f"expected a mapping, got {_describe(raw)}")
        for name in raw:
            if name not in allowed:
                shown = name if isinstance(name, str) and name.isidentifier() else repr(name)[:40]
                where = shown if key == "(top level)" else f"{key}.{shown}"
                self.fail(
                    where,
                    f"unknown key{did_you_mean(str(name), allowed)} "
                    f"(allowed: {', '.join(allowed)})",
                )
        return raw

    def build(self, key: str, cls: type, raw: Any, **extra: Any) -> Any:
        """Construct dataclass ``cls`` from mapping ``raw``, checking keys and field types."""
        hints = typing.get_type_hints(cls)
        section = self.mapping(key, raw, _fields(cls))
        kwargs = {
            name: self.coerce(f"{key}.{name}", value, hints[name])
            for name, value in section.items()
        }
        return self.checked(lambda: cls(**kwargs, **extra))

    def checked(self, make: typing.Callable[[], Any]) -> Any:
        """Run a validating constructor, prefixing its ConfigError with the file name."""
        try:
            return make()
        except ConfigError as exc:
            raise ConfigError(f"{self.source}: {exc}") from None

    def coerce(self, key: str, value: Any, hint: Any) -> Any:
        """Check ``value`` against a field type (int, float, bool, str, Optional, tuple)."""
        args = typing.get_args(hint)
        if type(None) in args:
            if value is None:
                return None
            hint = next(arg for arg in args if arg is not type(None))
        if typing.get_origin(hint) is tuple:
            items = self.number_list(key, value, float)
            if len(items) != len(typing.get_args(hint)):
                self.fail(key, f"expected a list of {len(typing.get_args(hint))} numbers")
            return items
        if hint is float and isinstance(value, str):
            value = _float_or_none(value) if _float_or_none(value) is not None else value
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and hint is int and isinstance(value, int) and not -INT64 <= value < INT64:
            self.fail(key, f"{_describe(value)} is out of range (at most 2^63 in magnitude)")
        if number and hint is float and isinstance(value, int) and abs(value) > 2**1023:
            self.fail(key, f"{_describe(value)} is out of range for a float")
        ok = {
            int: number and isinstance(value, int),
            float: number,
            bool: isinstance(value, bool),
            str: isinstance(value, str),
        }[hint]
        if not ok:
            self.fail(key, f"expected {_TYPE_NAMES[hint]}, got {_describe(value)}")
        return float(value) if hint is float else value

    def distinct(self, key: str, values: tuple[Any, ...]) -> tuple[Any, ...]:
        if len(set(values)) != len(values):
            self.fail(key, f"lists a value twice: {list(values)}")
        return values

    def number_list(self, key: str, raw: Any, kind: type) -> tuple[Any, ...]:
        """A scalar or a non-empty list of numbers of type ``kind``."""
        if not isinstance(raw, list):
            return (self.coerce(key, raw, kind),)
        if not raw:
            self.fail(key, "is empty")
        return tuple(self.coerce(f"{key}[{i}]", item, kind) for i, item in enumerate(raw))


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{text if len(text) <= 40 else text[:37] + '...'} ({type(value).__name__})"


def _float_or_none(text: str) -> float | None:
    # YAML 1.1 reads ``1e-3`` (no dot) as a string; accept it where a number is expected.
    try:
        return float(text)
    except ValueError:
        return None

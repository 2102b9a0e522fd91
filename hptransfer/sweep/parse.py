"""A sweep spec from YAML: :func:`load_spec` and :func:`parse_spec` give a frozen, validated
:class:`~hptransfer.sweep.spec.SweepSpec`.

Every error names the file and the key (``sweeps/x.yaml: search.space.lr.low: ...``);
unknown keys get a "did you mean" suggestion. The YAML format, with its defaults, is
documented in ``sweeps/proxy.yaml``; the ``search:`` section is read by
:mod:`hptransfer.sweep.parse_search`, the typed fields by :mod:`hptransfer.sweep.fields`.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import yaml

from hptransfer.config import DataConfig, ModelConfig, TrainConfig
from hptransfer.errors import ConfigError, FormatVersionError, yaml_problem
from hptransfer.param import BaseHPs, BaseShape, parameterization
from hptransfer.runtime.resources import RayOptions, Resources, TargetConfig
from hptransfer.store.location import Location, location
from hptransfer.sweep.fields import FieldReader, describe, field_names
from hptransfer.sweep.parse_search import check_search, parse_search
from hptransfer.sweep.spec import SPEC_VERSION, AshaSpec, SweepSpec
from hptransfer.trackers import parse_trackers

TOP_KEYS = (
    "schema_version", "name", "model", "data", "train", "parameterization", "base", "hps",
    "search", "seeds", "asha", "resources", "ray", "target", "log",
)  # fmt: skip
# A sweep's name is its results folder: portable characters only.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


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
    return parse_text(text, source=str(path))


def parse_text(text: str, source: str) -> SweepSpec:
    """Validate a spec's YAML text (a file's, or the spec.yaml a sweep stored): the one place
    sweep specs are read from YAML; a syntax error is one ConfigError with line and column."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: YAML syntax error ({yaml_problem(exc)})") from None
    return parse_spec(raw, source=source)


def parse_spec(raw: Any, source: str = "<spec>") -> SweepSpec:
    """Validate an already-parsed YAML document (a mapping) into a SweepSpec."""
    return _SpecReader(source).spec(raw)


class _SpecReader(FieldReader):
    """Turns a YAML mapping into a SweepSpec; every error names ``source`` and the key."""

    def __init__(self, source: str):
        super().__init__(source)
        self.fixed_hps: tuple[str, ...] = ()

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
                f"{describe(name)} is not a usable folder name: use letters, digits, '.', '_' "
                "and '-' (at most 100, starting with a letter or digit)",
            )
        model, widths, densities, depths, zero_inits, shapes = self.model(root.get("model", {}))
        train, horizons = self.train(root.get("train", {}))
        data, batches = self.data(root.get("data", {}), train, horizons)
        base_raw = self.mapping("base", root.get("base", {}), field_names(BaseShape))
        if len(depths) > 1:
            base_raw = {"depth": depths[0], **base_raw}
        search = parse_search(self, root.get("search"))
        hps_raw = self.mapping("hps", root.get("hps", {}), field_names(BaseHPs))
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
            shapes=shapes,
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
        check_search(self, spec, self.fixed_hps)
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

    def model(
        self, raw: Any
    ) -> tuple[
        ModelConfig,
        tuple[int, ...],
        tuple[float, ...],
        tuple[int, ...],
        tuple[bool, ...],
        tuple[tuple[int, float], ...],
    ]:
        """The model template and the swept widths, densities, depths, readout inits and
        (width, density) shapes (each checked)."""
        section = dict(self.mapping("model", raw, (*field_names(ModelConfig), "shapes")))
        shapes = self.shapes(section) if "shapes" in section else ()
        widths = tuple(dict.fromkeys(w for w, _ in shapes)) or self.distinct(
            "model.width", self.number_list("model.width", section.pop("width", 128), int)
        )
        densities = tuple(dict.fromkeys(d for _, d in shapes)) or self.distinct(
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
        for width, density in shapes or itertools.product(widths, densities):
            for depth in depths:
                self.checked(
                    lambda w=width, d=density, n=depth: model.replace(width=w, density=d, depth=n)
                )
        model = model.replace(readout_zero_init=zero_inits[0])
        return model, widths, densities, depths, zero_inits, shapes

    def shapes(self, section: dict[str, Any]) -> tuple[tuple[int, float], ...]:
        """``model.shapes``: [width, density] pairs, in place of model.width and model.density."""
        raw = section.pop("shapes")
        if "width" in section or "density" in section:
            self.fail(
                "model.shapes", "replaces model.width and model.density; give one or the other"
            )
        if not isinstance(raw, list) or not raw:
            self.fail(
                "model.shapes", f"expected a list of [width, density] pairs; got {describe(raw)}"
            )
        pairs = []
        for i, pair in enumerate(raw):
            key = f"model.shapes[{i}]"
            if not isinstance(pair, list) or len(pair) != 2:
                self.fail(key, f"expected a [width, density] pair; got {describe(pair)}")
            pairs.append((self.coerce(key, pair[0], int), self.coerce(key, pair[1], float)))
        return self.distinct("model.shapes", tuple(pairs))

    def train(self, raw: Any) -> tuple[TrainConfig, tuple[int, ...]]:
        """The training template (at the first horizon) and the horizons when ``steps`` is a
        list (``()`` for a single one)."""
        section = dict(self.mapping("train", raw, field_names(TrainConfig)))
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
        section = dict(self.mapping("data", raw, field_names(DataConfig)))
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

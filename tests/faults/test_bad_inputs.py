"""The bad-input catalogue: malformed sweep YAML, model and data configs, data files, CLI
flags, ``--to`` targets and ``--from`` sources. Every one ends as exactly one line on stderr
(``hptransfer: error: ...``) and exit code 2: no traceback, and nothing written, neither
under ``--results`` nor in the working directory's ``results/``.

It extends the tables of tests/sweep/test_sweep_spec.py (27 spec errors) and
tests/transfer/test_transfer_cli.py (8): none of those is repeated here. The property tests
at the end feed random YAML documents and random ``--to`` strings to the loaders.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import signal
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faultkit
import hypothesis.strategies as st
import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from hptransfer.cli.main import main
from hptransfer.cli.targets import TARGET_KEYS, parse_targets
from hptransfer.errors import ConfigError
from hptransfer.sweep import load_spec, parse_spec
from hptransfer.sweep.parse import TOP_KEYS
from hptransfer.sweep.parse_search import MAX_GRID_RUNS

tiny = faultkit.tiny_spec
OPTUNA = {"algorithm": "optuna", "space": {"lr": {"low": 0.001, "high": 0.1}}}


@dataclass
class Case:
    """One malformed input: ``argv(ctx)`` is the command line; the error line says ``says``."""

    argv: Callable[[Context], list[str]]
    says: tuple[str, ...]


class Context:
    """A case's folder: specs and data files written on demand, a fitted sweep to copy."""

    def __init__(self, folder: Path, fitted: Path):
        self.folder = folder
        self.results = folder / "out"
        self._fitted = fitted

    def spec(self, content: Any) -> str:
        path = self.folder / "spec.yaml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        return str(path)

    def sweep(self, content: Any, *flags: str) -> list[str]:
        return ["sweep", self.spec(content), "--results", str(self.results), *flags]

    def text_file(self, data: bytes) -> str:
        path = self.folder / "corpus.txt"
        path.write_bytes(data)
        return str(path)

    def fitted(self, damage: Callable[[Path], None] | None = None) -> str:
        """A copy of the fitted tiny sweep (results/tiny), damaged by ``damage``."""
        copy = self.results / "tiny"
        shutil.copytree(self._fitted, copy)
        if damage is not None:
            damage(copy)
        return str(copy)

    def transfer(self, *flags: str, to: str = "width=32") -> list[str]:
        return ["transfer", "--from", self.fitted(), "--to", to, *flags]


def text_data(ctx: Context, data: bytes | str) -> dict[str, Any]:
    path = data if isinstance(data, str) else ctx.text_file(data)
    return tiny(data={"corpus": "text", "path": path})


def spec_case(content: Any, *says: str) -> Case:
    return Case(lambda ctx: ctx.sweep(content), says)


def from_case(name: str, text: str, *says: str) -> Case:
    """``transfer --from`` a fitted sweep whose file ``name`` holds ``text``."""

    def argv(ctx: Context) -> list[str]:
        source = ctx.fitted(lambda folder: (folder / name).write_text(text))
        return ["transfer", "--from", source, "--to", "width=32"]

    return Case(argv, says)


ALL_HPS = ("lr", "init_std", "alpha_in", "alpha_out", "weight_decay")
HUGE_GRID = {hp: {"values": [0.01 * (i + 1) for i in range(20)]} for hp in ALL_HPS}

CASES: dict[str, Case] = {
    # -- the sweep YAML -------------------------------------------------------------------
    "yaml-not-utf8": spec_case(b"name: caf\xe9\n", "not UTF-8 text"),
    "yaml-python-tag": spec_case("name: !!python/name:os.system\n", "python/name:os.system"),
    "yaml-empty": spec_case("", "the file is empty"),
    "yaml-only-comment": spec_case("# nothing here\n", "the file is empty"),
    "yaml-scalar": spec_case("42\n", "expected a mapping", "42 (int)"),
    "key-with-newline": spec_case(tiny(model={"wid\nth": 16}), "model.'wid\\nth'", "unknown"),
    "name-path": spec_case(tiny(name="../elsewhere"), "name", "not a usable folder name"),
    "name-newline": spec_case(tiny(name="two\nlines"), "not a usable folder name"),
    "name-nul": spec_case(tiny(name="a\0b"), "not a usable folder name"),
    "name-too-long": spec_case(tiny(name="x" * 300), "not a usable folder name"),
    "name-number": spec_case(tiny(name=7), "name", "expected a string"),
    "seed-beyond-int64": spec_case(tiny(seeds=[2**70]), "seeds[0]", "out of range"),
    "lr-beyond-float": spec_case(
        tiny(search={"space": {"lr": {"values": [10**400]}}}), "out of range for a float"
    ),
    "log2-range-overflow": spec_case(
        tiny(search={"space": {"lr": {"log2_range": [0, 2000]}}}), "log2_range", "±1000"
    ),
    "log2-range-nan": spec_case(
        tiny(search={"space": {"lr": {"log2_range": [-9, math.nan]}}}), "log2_range", "±1000"
    ),
    "log2-step-tiny": spec_case(
        tiny(search={"space": {"lr": {"log2_range": [-9, -6], "step": 1e-300}}}),
        "search.space.lr.step",
        "at most",
    ),
    "log2-step-nan": spec_case(
        tiny(search={"space": {"lr": {"log2_range": [-9, -6], "step": math.nan}}}), "must be > 0"
    ),
    "grid-too-big": spec_case(
        tiny(search={"space": HUGE_GRID}), "search.space", f"more than {MAX_GRID_RUNS:,}"
    ),
    "search-seed-negative": spec_case(tiny(search={**OPTUNA, "seed": -1}), "search.seed"),
    "search-seed-huge": spec_case(tiny(search={**OPTUNA, "seed": 2**40}), "search.seed"),
    "num-samples-float": spec_case(tiny(search={**OPTUNA, "num_samples": 2.5}), "num_samples"),
    "max-retries-negative": spec_case(tiny(resources={"max_retries": -1}), "max_retries"),
    "gpus-nan": spec_case(tiny(resources={"gpus_per_trial": math.nan}), "gpus_per_trial"),
    "cpus-beyond-machine": spec_case(
        tiny(resources={"cpus_per_trial": 4096}), "cpus_per_trial is 4096", "CPUs"
    ),
    "asha-rf-nan": spec_case(tiny(asha={"reduction_factor": math.nan}), "reduction_factor"),
    "ray-section-unknown": spec_case(tiny(ray={"adress": "x"}), "ray.adress", "'address'"),
    # -- model configs --------------------------------------------------------------------
    "model-kind": spec_case(tiny(model={"kind": "transformer"}), "model.kind"),
    "model-mask": spec_case(tiny(model={"mask": "diagonal"}), "model.mask"),
    "model-mask-block": spec_case(tiny(model={"mask_block": 48}), "model.mask_block"),
    "model-kernel": spec_case(tiny(model={"kernel": "cuda"}), "model.kernel"),
    "model-depth-zero": spec_case(tiny(model={"depth": 0}), "model.depth"),
    "model-width-list-of-lists": spec_case(tiny(model={"width": [[16]]}), "model.width[0]"),
    "model-gpt-on-digits": spec_case(tiny(data={"corpus": "digits"}), "does not fit"),
    "model-context-short": spec_case(tiny(data={"seq_len": 64}), "exceeds model.context"),
    "train-betas-above-one": spec_case(tiny(train={"betas": [0.9, 1.5]}), "train.betas"),
    "train-momentum-negative": spec_case(tiny(train={"momentum": -0.5}), "train.momentum"),
    "train-muon-with-sgd-momentum": spec_case(
        tiny(train={"optimizer": "muon", "momentum": 0.5}), "train.momentum is sgd's setting"
    ),
    "train-muon-momentum-on-adamw": spec_case(
        tiny(train={"muon_momentum": 0.9}), "train.muon_momentum is muon's setting"
    ),
    "train-schedule": spec_case(tiny(train={"schedule": "exp"}), "train.schedule"),
    "train-warmup-beyond-steps": spec_case(tiny(train={"warmup_steps": 99}), "warmup_steps"),
    # -- data paths -----------------------------------------------------------------------
    "data-text-without-path": spec_case(tiny(data={"corpus": "text"}), "data.path is required"),
    "data-missing-file": Case(
        lambda ctx: ctx.sweep(text_data(ctx, str(ctx.folder / "nope.txt"))),
        ("nope.txt", "No such file"),
    ),
    "data-directory": Case(
        lambda ctx: ctx.sweep(text_data(ctx, str(ctx.folder))), ("not a regular",)
    ),
    "data-device": Case(
        lambda ctx: ctx.sweep(text_data(ctx, "/dev/zero")), ("not a regular file",)
    ),
    "data-nul-in-path": Case(lambda ctx: ctx.sweep(text_data(ctx, "a\0b")), ("cannot read",)),
    "data-empty-file": Case(lambda ctx: ctx.sweep(text_data(ctx, b"")), ("too short (0 bytes)",)),
    "data-one-byte": Case(lambda ctx: ctx.sweep(text_data(ctx, b"a")), ("too short (1 bytes)",)),
    "data-not-utf8": Case(lambda ctx: ctx.sweep(text_data(ctx, b"ab\xff" * 50)), ("not UTF-8",)),
    "data-shorter-than-seq-len": Case(
        lambda ctx: ctx.sweep(text_data(ctx, b"to be or not to be")), ("too short for seq_len",)
    ),
    # -- CLI flags ------------------------------------------------------------------------
    "no-subcommand": Case(lambda ctx: [], ("required: command",)),
    "unknown-subcommand": Case(lambda ctx: ["swep"], ("invalid choice: 'swep'",)),
    "sweep-without-spec": Case(lambda ctx: ["sweep"], ("required: spec",)),
    "sweep-unknown-flag": Case(lambda ctx: ctx.sweep(tiny(), "--resutls", "x"), ("--resutls",)),
    "sweep-max-concurrent-zero": Case(
        lambda ctx: ctx.sweep(tiny(), "--max-concurrent", "0"), ("max_concurrent",)
    ),
    "sweep-max-concurrent-text": Case(
        lambda ctx: ctx.sweep(tiny(), "--max-concurrent", "two"), ("invalid int",)
    ),
    "sweep-address-port": Case(
        lambda ctx: ctx.sweep(tiny(), "--address", "127.0.0.1:port"), ("bad Ray address",)
    ),
    "sweep-results-is-a-file": Case(
        lambda ctx: ["sweep", ctx.spec(tiny()), "--results", ctx.text_file(b"x")],
        ("cannot create the results folder",),
    ),
    "fit-n-boot-zero": Case(lambda ctx: ["fit", ctx.fitted(), "--n-boot", "0"], ("n_boot",)),
    "fit-at-step-negative": Case(
        lambda ctx: ["fit", ctx.fitted(), "--at-step", "-1"], ("at_step",)
    ),
    "fit-metric": Case(lambda ctx: ["fit", ctx.fitted(), "--metric", "loss"], ("invalid choice",)),
    "fit-no-results": Case(lambda ctx: ["fit"], ("no sweep results under results/",)),
    "transfer-without-to": Case(lambda ctx: ["transfer"], ("required: --to",)),
    "transfer-seeds-empty": Case(lambda ctx: ctx.transfer("--seeds", ","), ("--seeds is empty",)),
    "transfer-cpus-zero": Case(lambda ctx: ctx.transfer("--cpus", "0"), ("--cpus must be >= 1",)),
    "transfer-gpus-negative": Case(
        lambda ctx: ctx.transfer("--gpus", "-1"), ("--gpus must be >= 0",)
    ),
    "transfer-steps-zero": Case(
        lambda ctx: ctx.transfer("--steps", "0"), ("--steps must be >= 1",)
    ),
    "transfer-batch-zero": Case(
        lambda ctx: ctx.transfer("--batch-size", "0"), ("--batch-size must be >= 1",)
    ),
    "transfer-parameterization": Case(lambda ctx: ctx.transfer("-p", "supr"), ("'supr'",)),
    # -- --to -----------------------------------------------------------------------------
    "to-empty": Case(lambda ctx: ctx.transfer(to=""), ("empty --to spec",)),
    "to-only-separators": Case(lambda ctx: ctx.transfer(to=" ; ;"), ("empty --to spec",)),
    "to-no-value": Case(lambda ctx: ctx.transfer(to="width"), ("expected key=value",)),
    "to-not-a-number": Case(lambda ctx: ctx.transfer(to="width=wide"), ("bad --to value",)),
    "to-float-width": Case(lambda ctx: ctx.transfer(to="width=1e3"), ("bad --to value",)),
    "to-zero-width": Case(lambda ctx: ctx.transfer(to="width=0"), ("positive integer",)),
    "to-negative-depth": Case(lambda ctx: ctx.transfer(to="depth=-1"), ("positive integer",)),
    "to-density-division-by-zero": Case(lambda ctx: ctx.transfer(to="density=1/0"), ("bad --to",)),
    "to-density-nan": Case(lambda ctx: ctx.transfer(to="density=nan"), ("(0, 1]",)),
    "to-key-twice": Case(lambda ctx: ctx.transfer(to="width=64,width=32"), ("given twice",)),
    "to-heads-do-not-divide": Case(lambda ctx: ctx.transfer(to="heads=3"), ("divisible",)),
    "to-5000-digits": Case(lambda ctx: ctx.transfer(to="width=" + "9" * 5000), ("bad --to",)),
    # -- --from ---------------------------------------------------------------------------
    "from-missing": Case(
        lambda ctx: ["transfer", "--from", str(ctx.folder / "nope"), "--to", "width=32"],
        ("no sweep results in",),
    ),
    "from-a-table": Case(
        lambda ctx: ["transfer", "--from", f"{ctx.fitted()}/trials.parquet", "--to", "width=32"],
        ("no sweep results in",),
    ),
    "from-fit-not-json": from_case("fit.json", "{", "not a valid fit.json", "hptransfer fit"),
    "from-fit-a-list": from_case("fit.json", "[]", "not a valid fit.json"),
    "from-fit-other-version": from_case("fit.json", '{"schema_version": 99}', "schema_version 99"),
    "from-spec-broken": from_case("spec.yaml", "name: [", "spec.yaml: YAML syntax error"),
    "from-spec-other-tool": from_case("spec.yaml", "epochs: 3\n", "spec.yaml: epochs: unknown key"),
}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    return faultkit.write_fitted_sweep(tmp_path_factory.mktemp("fitted"))


def test_the_catalogue_is_at_least_thirty_inputs():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_exit_2_and_writes_nothing(
    case, fitted, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # a case without --results would use ./results
    ctx = Context(tmp_path, fitted)
    argv = CASES[case].argv(ctx)
    before = faultkit.tree_digest(tmp_path)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hptransfer: error: "), err
    assert lines[0].count("hptransfer:") == 1, lines[0]
    for fragment in CASES[case].says:
        assert fragment in lines[0], lines[0]
    assert faultkit.tree_digest(tmp_path) == before  # no partial write anywhere
    assert not (tmp_path / "results").exists()
    for leftover in ctx.results.glob("*"):
        assert leftover.name == "tiny", f"{leftover} was created"


# -- property tests: random documents and targets into the loaders ---------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["1e-3", "1e400", "nan", "-inf", "0x10", "~", "yes", "16", "", "1/8"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
SECTION_KEYS = sorted({k for v in faultkit.SPEC.values() if isinstance(v, dict) for k in v})


def paths(spec: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every key path of a nested spec mapping."""
    if isinstance(spec, dict):
        for key, value in spec.items():
            yield (*prefix, key)
            yield from paths(value, (*prefix, key))


numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**70), 2**70)
ranges = st.one_of(
    st.fixed_dictionaries(
        {"log2_range": st.lists(numbers, min_size=2, max_size=2)}, optional={"step": numbers}
    ),
    st.fixed_dictionaries({"values": st.lists(numbers, max_size=3)}),
    st.fixed_dictionaries({"low": numbers, "high": numbers}, optional={"log": st.booleans()}),
)


@st.composite
def mutated_specs(draw) -> Any:
    """The valid tiny spec with a few values replaced, keys added or removed, and a random
    searched range: documents that get past the first checks and reach the deeper ones."""
    spec = faultkit.tiny_spec(
        **draw(st.dictionaries(st.sampled_from(TOP_KEYS), values, max_size=2))
    )
    if draw(st.booleans()):
        algorithm = draw(st.sampled_from(["grid", "optuna"]))
        spec["search"] = {"algorithm": algorithm, "space": {"lr": draw(ranges)}}
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(list(paths(spec))))
        parent = spec
        for key in where[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[where[-1]] = draw(values)
        elif action == "delete":
            del parent[where[-1]]
        else:
            parent[draw(st.sampled_from(SECTION_KEYS) | st.text(max_size=6))] = draw(values)
    return spec


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (a loader must answer in seconds, whatever the input)."""

    def expire(*_):
        raise TimeoutError(f"the loader took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def assert_loads_or_one_line_error(path: Path) -> None:
    with time_limit(10):
        try:
            spec = load_spec(path)
        except ConfigError as exc:
            message = str(exc)
            assert message.startswith(str(path)) and "\n" not in message, message
            return
    assert parse_spec(yaml.safe_load(spec.to_yaml()), source="again") == spec  # round trip


PROPERTY = settings(
    max_examples=150,
    deadline=None,
    database=None,  # nothing written into the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@PROPERTY
@given(document=st.text(alphabet=string.printable + "é\u2028", max_size=120))
def test_random_text_loads_or_fails_in_one_line(document, tmp_path):
    path = tmp_path / "random.yaml"
    path.write_text(document)
    assert_loads_or_one_line_error(path)


@PROPERTY
@given(spec=values | mutated_specs())
def test_random_yaml_documents_load_or_fail_in_one_line(spec, tmp_path):
    path = tmp_path / "random.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True))
    assert_loads_or_one_line_error(path)


targets = st.lists(
    st.tuples(
        st.sampled_from([*TARGET_KEYS, "size", "", " width"]),
        st.sampled_from(["=", "", "=="]),
        st.text(alphabet="0123456789./-+e nainf_x", max_size=8) | st.integers().map(str),
    ).map("".join),
    max_size=4,
).flatmap(lambda items: st.sampled_from([",", ";", ", "]).map(lambda sep: sep.join(items)))


@PROPERTY
@given(text=targets | st.text(max_size=40))
def test_random_to_strings_parse_or_fail_in_one_line(text):
    with time_limit(10):
        try:
            parsed = parse_targets(text)
        except ConfigError as exc:
            assert "\n" not in str(exc), str(exc)
            return
    assert parsed
    for target in parsed:
        budget = {"tokens": target.tokens, "steps": target.steps, "batch": target.batch}
        given = {**target.shape.changes(), **{k: v for k, v in budget.items() if v is not None}}
        assert set(given) <= set(TARGET_KEYS)
        for key, value in given.items():
            if key == "density":
                assert 0 < value <= 1 and math.isfinite(value)
            else:
                assert isinstance(value, int) and value >= 1

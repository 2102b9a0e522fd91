"""A whole ``hptransfer sweep``: the command's options over the spec's, then the sweep run
once, or grown round by round past its edge optima (:mod:`hptransfer.sweep.extend`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hptransfer.errors import ConfigError
from hptransfer.runtime.cluster import Execution
from hptransfer.store import Location, ResultsStore
from hptransfer.sweep.extend import MAX_ROUNDS, auto_extend, covering
from hptransfer.sweep.parse import load_spec
from hptransfer.sweep.run import SweepOutcome, run_sweep
from hptransfer.sweep.spec import SweepSpec
from hptransfer.trackers import chosen

# The fit a grown sweep is checked with: trials -> optima with their grid arg-mins. The
# caller hands it in (the sweep does not import the analysis).
Optima = Callable[[pd.DataFrame], pd.DataFrame]


@dataclass(frozen=True)
class SweepOptions:
    """A sweep as the command line asks for it, over its spec file.

    ``address`` and ``max_concurrent`` override the spec's ``ray.address`` and
    ``resources.max_concurrent``; ``auto_extend`` None keeps the spec's
    ``search.auto_extend``, True turns it on (4 rounds where the spec sets none), False off.
    """

    spec: str | Location  # the sweep YAML
    results: Location = Path("results")
    address: str | None = None
    max_concurrent: int | None = None
    new: bool = False
    extend: bool = False
    reuse: Sequence[Location] = ()
    auto_extend: bool | None = None
    log: Sequence[str] = ()  # trackers (--log) besides the spec's log: key
    verbose: bool = False


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C (or ``kill``) during the runs; the finished ones are stored in ``folder``."""

    def __init__(self, folder: str):
        super().__init__(folder)
        self.folder = folder


def run_command(options: SweepOptions, optima: Optima) -> SweepOutcome:
    """Load the spec, apply the options and run (or resume, or grow) the sweep."""
    spec = load_spec(options.spec)
    resources = spec.resources
    if options.max_concurrent is not None:
        resources = dataclasses.replace(resources, max_concurrent=options.max_concurrent)
    execution = Execution(
        resources=resources,
        address=options.address or spec.ray.address,
        verbose=options.verbose,
        trackers=chosen(spec.log, options.log),
    )
    try:
        return _run(spec, options, execution, optima)
    except KeyboardInterrupt:
        raise SweepInterrupted(f"{options.results}/{spec.name}") from None


def extend_rounds(spec: SweepSpec, flag: bool | None) -> int:
    """Rounds of auto-extension: the spec's ``search.auto_extend`` unless ``--auto-extend``
    (that, else 4) or ``--no-auto-extend`` (none) says otherwise."""
    if flag is None:
        return spec.search.auto_extend
    return (spec.search.auto_extend or MAX_ROUNDS) if flag else 0


def _run(
    spec: SweepSpec, options: SweepOptions, execution: Execution, optima: Optima
) -> SweepOutcome:
    """The sweep, or auto-extended: grown until no optimum is on an edge (or the rounds run
    out)."""
    rounds = extend_rounds(spec, options.auto_extend)
    if not rounds:
        return run_sweep(
            spec,
            options.results,
            execution=execution,
            new=options.new,
            extend=options.extend,
            reuse=options.reuse,
        )
    if spec.search.algorithm != "grid":
        raise ConfigError(f"--auto-extend grows a grid; {spec.name!r} searches with optuna")
    outcomes: list[SweepOutcome] = []

    def once(grown: SweepSpec) -> pd.DataFrame:
        new = options.new and not outcomes
        outcomes.append(
            run_sweep(
                grown,
                options.results,
                execution=execution,
                new=new,
                extend=True,
                reuse=options.reuse,
            )
        )
        return outcomes[-1].trials

    stored = None if options.new else ResultsStore(options.results / spec.name).read_spec()
    auto_extend(covering(spec, stored), once, optima, execution.out, max_rounds=rounds)
    return outcomes[-1]

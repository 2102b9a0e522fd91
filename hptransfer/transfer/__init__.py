"""Transfer fitted base HPs from a proxy sweep to a wide, sparse target, and train it.

The base HPs (σ, η, α_in, α_out, weight decay, α_attn) and base settings (the readout's zero
init) come from the sweep's ``fit.json``, fitted at the base shape; the target's per-parameter
HPs follow from them and the parameterization's table (:func:`hptransfer.models.describe`).
The target shares the sweep's data, batch size, steps and schedule unless overridden, which
breaks transfer (``docs/parameterizations.md#base-hyperparameters``) and is said loudly.
Baselines (``compare``) train the same target with the same base HPs under other
parameterizations; SP with the same base HPs is the paper's standard practice.

Runs go through the sweep's Ray orchestration (:func:`hptransfer.sweep.run_trials`) into
``results/<sweep>/transfer.parquet`` and ``transfer_curves.parquet``; stored runs are not
trained again. Before anything trains, each target's cost is estimated (parameters, training
memory, step time: :mod:`hptransfer.cost`) and a target that would not fit the memory
available is refused; its per-parameter table comes from :mod:`hptransfer.plan`.

One job per module: ``source`` (the fitted sweep), ``runs`` (the request and its runs, each
target planned once), ``report`` (gains and regret), ``command`` (a whole ``hptransfer
transfer``: options merged with the spec, checked, described, trained, reported),
``plan_command`` (a whole ``hptransfer plan``: a proxy run from a spec or flags, no fit, moved
to a target and described).
"""

from hptransfer.transfer.command import Outcome, TransferOptions, run
from hptransfer.transfer.report import gain_rows, regret_report
from hptransfer.transfer.runs import Request, TransferRuns, target_runs
from hptransfer.transfer.source import Source, load_source

__all__ = [
    "Outcome",
    "Request",
    "Source",
    "TransferOptions",
    "TransferRuns",
    "gain_rows",
    "load_source",
    "regret_report",
    "run",
    "target_runs",
]

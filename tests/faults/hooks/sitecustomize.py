"""Fault injection for the tests in tests/faults, active only where ``HPT_FAULT_PLAN`` names
a JSON plan. Ray's workers inherit the driver's environment (``PYTHONPATH`` included), so a
test that starts ``hptransfer sweep`` with this folder on ``PYTHONPATH`` reaches every
training run of the sweep, in whichever process it trains.

Plan keys (each optional):
  ``log``:   a file; every training attempt appends ``pid lr seed``.
  ``raise``: ``{"lr": .., "seed": .., "message": ..}``: that run raises RuntimeError(message).
  ``pause``: ``{"seed": .., "marker": path, "until": path}``: the first run of that seed to
             report an evaluation writes its pid to ``marker`` and sleeps until ``until``
             exists (without ``until``: for minutes, for the test to kill it).

``hptransfer.train.train`` is wrapped when the module is first imported (a meta path hook),
so Python processes that never train pay nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
import time

PLAN_ENV = "HPT_FAULT_PLAN"
PAUSE_S = 300


def _wrap(train):
    with open(os.environ[PLAN_ENV]) as handle:
        plan = json.load(handle)

    def faulty_train(run, *, on_eval=None, **kwargs):
        if "log" in plan:
            with open(plan["log"], "a") as log:
                log.write(f"{os.getpid()} {run.hps.lr!r} {run.seed}\n")
        fail = plan.get("raise")
        if fail and run.hps.lr == fail["lr"] and run.seed == fail["seed"]:
            raise RuntimeError(fail["message"])
        pause = plan.get("pause")
        if pause and run.seed == pause["seed"] and on_eval is not None:
            on_eval = _pausing(on_eval, pause["marker"], pause.get("until"))
        return train(run, on_eval=on_eval, **kwargs)

    return faulty_train


def _pausing(on_eval, marker, until):
    def report_then_pause(point):
        on_eval(point)
        try:  # exactly one run, in one process, pauses: the first to create the marker
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        deadline = time.monotonic() + PAUSE_S
        while time.monotonic() < deadline and not (until and os.path.exists(until)):
            time.sleep(0.1)

    return report_then_pause


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != "hptransfer.train":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_wrap(module):
            exec_module(module)
            module.train = _wrap(module.train)

        spec.loader.exec_module = exec_and_wrap
        return spec


if os.environ.get(PLAN_ENV):
    sys.meta_path.insert(0, _Finder())

"""Any ``nn.Module`` under the rules: roles from shapes, re-initialisation, forward
multipliers, masks and the per-parameter table (:func:`parametrize`), and a run's model
whichever kind it is (:func:`build_model`, :func:`plan_parameters`, :func:`describe`).

This room sits above the model library and below training, planning and the coordinate
check, so all of them build a spec's ``model: {kind: python, build: ...}`` through it.
:mod:`hptransfer.own` is its documented public face.
"""

from __future__ import annotations

from hptransfer.adapt.runs import build_model, describe, plan_parameters

__all__ = ["build_model", "describe", "plan_parameters"]

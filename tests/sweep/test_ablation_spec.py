"""The knobs issue 29's ablations read from a sweep spec: clipping off, κ = η_emb/η searched
like α_out, and explicit (width, density) shapes instead of the width × density product."""

from __future__ import annotations

import pytest
from conftest import tiny_spec

from hptransfer.errors import ConfigError
from hptransfer.sweep import parse_spec
from hptransfer.sweep.trials import grid_runs


@pytest.mark.parametrize("off", [None, 0])
def test_grad_clip_null_or_0_is_no_clipping_and_one_spec(off):
    spec = parse_spec(tiny_spec(train={"grad_clip": off}))
    assert spec.train.grad_clip is None and {r.train.grad_clip for r in grid_runs(spec)} == {None}
    assert spec.hash == parse_spec(tiny_spec(train={"grad_clip": None})).hash
    assert spec.hash != parse_spec(tiny_spec()).hash
    with pytest.raises(ConfigError, match=r"train.grad_clip must be >= 0"):
        parse_spec(tiny_spec(train={"grad_clip": -0.5}))

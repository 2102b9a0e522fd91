"""hptransfer.own.coord_check: the records and report of `hptransfer coord-check` for any model."""

import pandas as pd
import pytest
import torch

import hptransfer.own as hpo
from hptransfer.errors import ConfigError
from hptransfer.store.folder import COORD_CHECK_FILE
from tests.own.models import CONTEXT, VOCAB, TinyLM


def batches(generator):
    idx = torch.randint(0, VOCAB, (2, CONTEXT + 1), generator=generator)
    return idx[:, :-1], idx[:, 1:]


def test_records_and_report_as_the_builtin_check(tmp_path):
    records = hpo.coord_check(
        TinyLM, [32, 64], [1, 0.5], batches, steps=2, out=tmp_path, parameterizations=["supar"]
    )
    columns = ["parameterization", "width", "density", "depth", "seed", "step", "layer"]
    assert list(records.columns) == [*columns, "group", "metric", "value"]
    shapes = set(records[["width", "density"]].itertuples(index=False, name=None))
    assert shapes == {(32, 1.0), (64, 1.0), (64, 0.5)}
    assert set(records["metric"]) == {"activation", "gradient", "update", "output_update"}
    groups = set(records["group"])
    assert {"blocks", "attn.qkv", "up", "down", "logits", "tokens"} <= groups
    assert (records["depth"] == 2).all() and (records["value"] >= 0).all()
    written = pd.read_parquet(tmp_path / COORD_CHECK_FILE)
    assert len(written) == len(records)
    assert (tmp_path / "coord_check_width.png").exists()
    assert (tmp_path / "coord_check_density.png").exists()


def test_needs_data_and_two_shapes():
    with pytest.raises(ConfigError, match="needs data"):
        hpo.coord_check(TinyLM, [32, 64])
    with pytest.raises(ConfigError, match="two widths or two densities"):
        hpo.coord_check(TinyLM, [32], [1], batches)

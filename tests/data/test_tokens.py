"""``corpus: tokens``: memory-mapped token folders, their windows, sizes and bad inputs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hptransfer import data
from hptransfer.cli.main import main
from hptransfer.config import DataConfig
from hptransfer.data import load_dataset
from hptransfer.data.sources import io_sizes
from hptransfer.errors import DataError

GIB = 1 << 30


@pytest.fixture(autouse=True)
def fresh_cache():
    load_dataset.cache_clear()
    data._load_source.cache_clear()
    yield
    load_dataset.cache_clear()
    data._load_source.cache_clear()


def write_folder(
    folder: Path, train: np.ndarray, val: np.ndarray, vocab: int, **meta: object
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dtype = {2: "uint16", 4: "uint32"}[train.dtype.itemsize]
    train.astype(train.dtype.newbyteorder("<")).tofile(folder / "train.bin")
    val.astype(val.dtype.newbyteorder("<")).tofile(folder / "val.bin")
    doc = {"vocab_size": vocab, "dtype": dtype, **meta}
    (folder / "meta.json").write_text(json.dumps(doc))
    return folder


def tokens_config(folder: Path, seq_len: int = 16) -> DataConfig:
    return DataConfig(corpus="tokens", path=str(folder), seq_len=seq_len)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
def test_windows_are_the_file_tokens(tmp_path, dtype):
    rng = np.random.default_rng(0)
    vocab = 70_000 if dtype == np.uint32 else 5000
    train = rng.integers(0, vocab, 10_000).astype(dtype)
    val = rng.integers(0, vocab, 3000).astype(dtype)
    folder = write_folder(tmp_path / "tok", train, val, vocab, train_tokens=10_000)
    dataset = load_dataset(tokens_config(folder))
    assert (dataset.input_size, dataset.output_size) == (vocab, vocab)
    assert io_sizes("tokens", str(folder)) == (vocab, vocab)
    x, y = dataset.train_batch(8, 16, torch.Generator().manual_seed(5))
    starts = torch.randint(10_000 - 16, (8,), generator=torch.Generator().manual_seed(5))
    for row, start in enumerate(starts.tolist()):
        assert x[row].tolist() == train[start : start + 16].tolist()
        assert y[row].tolist() == train[start + 1 : start + 17].tolist()
    assert x.dtype == torch.int64
    ((vx, vy),) = dataset.val_batches(2, 16, 1)
    assert vx[0].tolist() == val[:16].tolist() and vy[1].tolist() == val[-16:].tolist()


def test_a_4gib_token_file_opens_without_reading_it(tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    train = folder / "train.bin"
    with train.open("wb") as f:  # sparse: 2^31 uint16 tokens, only a few pages written
        f.truncate(4 * GIB)
        f.seek(3 * GIB)
        np.arange(1, 101, dtype="<u2").tofile(f)
    np.arange(100, dtype="<u2").tofile(folder / "val.bin")
    (folder / "meta.json").write_text(json.dumps({"vocab_size": 50_257, "dtype": "uint16"}))
    before = _rss()
    start = time.perf_counter()
    dataset = load_dataset(tokens_config(folder))
    x, _ = dataset.train_batch(16, 16, torch.Generator().manual_seed(0))
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    assert _rss() - before < 100 * 2**20
    assert len(dataset.train) == 2 * GIB and x.shape == (16, 16)
    # A window over the written tokens (3 GiB in = token 1.5 Gi) reads them back.
    window, _ = data.datasets._windows(dataset.train, torch.tensor([3 * GIB // 2 - 1]), 4)
    assert window.tolist() == [[0, 1, 2, 3]]


def _rss() -> int:
    fields = Path("/proc/self/status").read_text().split("VmRSS:")[1].split()
    return int(fields[0]) * 1024


def test_plan_sizes_the_model_from_meta(tmp_path, capsys):
    ids = np.arange(1000, dtype=np.uint16)
    folder = write_folder(tmp_path / "tok", ids, ids, 1000)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"name: t\nmodel: {{width: 32, heads: 2, context: 16}}\n"
        f"data: {{corpus: tokens, path: {folder}, seq_len: 16}}\n"
        "search: {space: {lr: {values: [0.01]}}}\n"
    )
    assert main(["plan", "--json", str(spec)]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["tok_emb.weight"]["shape"] == [1000, 32]
    assert rows["head.weight"]["shape"] == [1000, 32]


def _bad_folders() -> dict[str, tuple]:
    return {
        "odd size": (lambda f: (f / "train.bin").write_bytes(b"\0" * 201), "not a multiple"),
        "id >= vocab": (
            lambda f: (f / "meta.json").write_text('{"vocab_size": 50, "dtype": "uint16"}'),
            "id 99",
        ),
        "no meta": (lambda f: (f / "meta.json").unlink(), "meta.json is missing"),
        "bad json": (lambda f: (f / "meta.json").write_text("{vocab"), "not valid JSON"),
        "no vocab": (lambda f: (f / "meta.json").write_text('{"dtype": "uint16"}'), "vocab_size"),
        "bad dtype": (
            lambda f: (f / "meta.json").write_text('{"vocab_size": 100, "dtype": "int8"}'),
            "dtype must be",
        ),
        "count": (
            lambda f: (f / "meta.json").write_text(
                '{"vocab_size": 100, "dtype": "uint16", "val_tokens": 7}'
            ),
            "meta.json says 7",
        ),
        "no val": (lambda f: (f / "val.bin").unlink(), "is missing"),
    }


@pytest.mark.parametrize("case", list(_bad_folders()))
def test_bad_token_folder_is_one_line_exit_2(tmp_path, capsys, case):
    ids = np.arange(100, dtype=np.uint16)
    folder = write_folder(tmp_path / "tok", ids, ids, 100)
    damage, message = _bad_folders()[case]
    damage(folder)
    with pytest.raises(DataError, match=message):
        load_dataset(tokens_config(folder))
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"name: t\nmodel: {{width: 32, heads: 2, context: 16}}\n"
        f"data: {{corpus: tokens, path: {folder}, seq_len: 16}}\n"
        "search: {space: {lr: {values: [0.01]}}}\n"
    )
    assert main(["sweep", str(spec), "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hptransfer: error: ") and err.count("\n") == 1 and message in err
    written = {p.name for p in (tmp_path / "results").rglob("*") if p.is_file()}
    assert written <= {"sweep.lock"}  # the lock is taken before the data is checked

"""The data module: batch shapes and dtypes, fixed validation sets, corpus integrity, errors."""

from __future__ import annotations

import pytest
import torch

from hptransfer import data
from hptransfer.config import DataConfig
from hptransfer.data import load_dataset, shakespeare, sources
from hptransfer.errors import DataError


@pytest.fixture
def fresh_cache():
    # Both cache levels: configs, and the sources they share.
    load_dataset.cache_clear()
    data._load_source.cache_clear()
    yield
    load_dataset.cache_clear()
    data._load_source.cache_clear()


def _text_file(tmp_path, content: bytes):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize("corpus", ["synthetic", "shakespeare"])
def test_text_batches(corpus):
    dataset = load_dataset(DataConfig(corpus=corpus))
    assert dataset.kind == "text" and dataset.input_size == dataset.output_size
    x, y = dataset.train_batch(4, 32, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 32)
    assert x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert int(x.max()) < dataset.input_size


def test_text_file_batches_follow_the_stream(tmp_path):
    text = "".join(chr(ord("a") + i % 26) for i in range(1000)).encode()
    dataset = load_dataset(DataConfig(corpus="text", path=_text_file(tmp_path, text), seq_len=16))
    assert (dataset.input_size, dataset.output_size) == (256, 256)
    x, y = dataset.train_batch(8, 16, torch.Generator().manual_seed(1))
    # In this alphabet stream every byte is followed by the next letter.
    assert torch.equal((x - ord("a") + 1) % 26, y - ord("a"))
    ((vx, _),) = dataset.val_batches(2, 16, 1)
    assert int(vx[0, 0]) == text[900]  # validation is the last 10%


def test_train_batches_use_only_the_generator():
    dataset = load_dataset(DataConfig(corpus="synthetic"))
    first = dataset.train_batch(4, 16, torch.Generator().manual_seed(3))
    torch.manual_seed(123)
    second = dataset.train_batch(4, 16, torch.Generator().manual_seed(3))
    other = dataset.train_batch(4, 16, torch.Generator().manual_seed(4))
    assert torch.equal(first[0], second[0]) and not torch.equal(first[0], other[0])


@pytest.mark.parametrize("corpus", ["synthetic", "shakespeare", "digits"])
def test_val_batches_are_fixed(corpus):
    dataset = load_dataset(DataConfig(corpus=corpus))
    torch.manual_seed(0)
    first = dataset.val_batches(4, 16, 3)
    torch.manual_seed(1)
    again = dataset.val_batches(4, 16, 3)
    assert len(first) == 3
    for (x1, y1), (x2, y2) in zip(first, again, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_shakespeare_val_set_is_pinned():
    # Validation windows depend on no RNG: the first starts at the first held-out play.
    (x, y), *_ = load_dataset(DataConfig("shakespeare")).val_batches(2, 16, 4)
    assert bytes(x[0].tolist()) == b"# Twelfth Night\n"
    assert bytes(y[0].tolist()) == b" Twelfth Night\n\n"


def test_digits():
    dataset = load_dataset(DataConfig(corpus="digits"))
    assert (dataset.kind, dataset.input_size, dataset.output_size) == ("classification", 64, 10)
    x, y = dataset.train_batch(32, 128, torch.Generator().manual_seed(0))
    assert x.shape == (32, 64) and x.dtype == torch.float32
    assert y.shape == (32,) and y.dtype == torch.int64
    assert float(x.min()) >= 0 and float(x.max()) <= 1 and int(y.max()) < 10
    n_val = len(dataset.val_y)
    batches = dataset.val_batches(100, 1, (n_val + 99) // 100)
    assert torch.equal(torch.cat([y for _, y in batches])[:n_val], dataset.val_y)  # wraps round


def test_load_dataset_is_cached():
    assert load_dataset(DataConfig("synthetic")) is load_dataset(DataConfig("synthetic"))


def test_shakespeare_split_by_whole_plays():
    plays = shakespeare.load_plays()
    assert len(plays) == 38 and set(shakespeare.VALIDATION_PLAYS) <= set(plays)
    train, val = shakespeare.split_plays(plays)
    for name in shakespeare.VALIDATION_PLAYS:
        title = plays[name].splitlines()[0].encode() + b"\n"
        assert title.startswith(b"# ") and title in val and title not in train
    assert 0.08 < len(val) / (len(train) + len(val)) < 0.12
    assert b"**" not in train


def test_shakespeare_corruption_is_caught(tmp_path, monkeypatch, fresh_cache):
    corrupt = tmp_path / "shakespeare.json.xz"
    raw = bytearray(shakespeare.CORPUS_PATH.read_bytes())
    raw[len(raw) // 2] ^= 1
    corrupt.write_bytes(raw)
    monkeypatch.setattr(shakespeare, "CORPUS_PATH", corrupt)
    with pytest.raises(DataError, match="sha256"):
        load_dataset(DataConfig("shakespeare"))
    monkeypatch.setattr(shakespeare, "CORPUS_PATH", tmp_path / "missing.json.xz")
    with pytest.raises(DataError, match="unreadable"):
        shakespeare.load_plays()


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read"), (b"caf\xe9 " * 100, "not UTF-8"), (b"short text", "too short")],
)
def test_bad_text_file(tmp_path, content, message):
    path = str(tmp_path / "missing.txt") if content is None else _text_file(tmp_path, content)
    with pytest.raises(DataError, match=message) as info:
        load_dataset(DataConfig(corpus="text", path=path, seq_len=16))
    assert path in str(info.value) and "\n" not in str(info.value)


def test_synthetic_is_small_and_learnable():
    dataset = sources.synthetic_dataset()
    assert dataset.input_size == 32
    # The chain's bigram statistics carry signal: most successors are rare.
    train = torch.from_numpy(dataset.train).long()
    counts = torch.bincount(train[:-1] * 32 + train[1:], minlength=32 * 32).view(32, 32)
    top4 = counts.sort(dim=1, descending=True).values[:, :4].sum() / counts.sum()
    assert top4 > 0.6


def test_io_sizes_match_the_loaded_corpora():
    """``plan`` sizes a model from IO_SIZES without loading data: they must agree."""
    from hptransfer.config import DataConfig
    from hptransfer.data import load_dataset
    from hptransfer.data.sources import IO_SIZES

    for corpus in ("shakespeare", "synthetic", "digits"):
        data = load_dataset(DataConfig(corpus=corpus))
        assert IO_SIZES[corpus] == (data.input_size, data.output_size), corpus

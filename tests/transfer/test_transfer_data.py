"""Proxy and target share their tokens: fit.json records the data, transfer checks it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fitted_sweep import write_sweep

from hptransfer.analysis.fit import fit_sweep, load_fit, write_fit
from hptransfer.cli.main import main
from hptransfer.cli.targets import parse_targets
from hptransfer.data.tokens import data_identity, same_tokens
from hptransfer.transfer import Request, load_source, target_runs


def token_folder(folder: Path, vocab: int, tokenizer: str, sha: str) -> str:
    folder.mkdir(parents=True)
    ids = (np.arange(500) % vocab).astype("<u2")
    for split in ("train", "val"):
        ids.tofile(folder / f"{split}.bin")
    meta = {
        "vocab_size": vocab,
        "dtype": "uint16",
        "tokenizer": {"name": tokenizer, "vocab_size": vocab, "sha256": sha},
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    return str(folder)


@pytest.fixture
def tokens_sweep(tmp_path: Path) -> tuple[Path, str]:
    """The tiny fitted sweep, its spec and fit moved onto a BPE token folder."""
    sweep = write_sweep(tmp_path / "results")
    proxy = token_folder(tmp_path / "proxy", 64, "bpe:64", "a" * 64)
    spec = (sweep / "spec.yaml").read_text().replace("corpus: synthetic", "corpus: tokens")
    (sweep / "spec.yaml").write_text(
        spec.replace("batch_size: 4", f"path: {proxy}\n  batch_size: 4")
    )
    write_fit(fit_sweep(sweep), sweep)
    return sweep, proxy


def test_fit_records_the_tokenizer_and_vocabulary(tokens_sweep):
    sweep, proxy = tokens_sweep
    data = load_fit(sweep).data
    assert data == {
        "corpus": "tokens",
        "vocab_size": 64,
        "tokenizer": {"name": "bpe:64", "vocab_size": 64, "sha256": "a" * 64},
    }
    assert data == data_identity("tokens", proxy)


def test_same_tokenizer_other_folder_is_accepted_and_sizes_the_model(tokens_sweep, tmp_path):
    sweep, _ = tokens_sweep
    bigger = token_folder(tmp_path / "more", 64, "bpe:64", "a" * 64)
    request = Request(parse_targets("width=32"), "supar", data=bigger)
    runs = target_runs(load_source(sweep), request)
    assert runs[0].data.path == bigger and runs[0].model.input_size == 64


@pytest.mark.parametrize(
    ("vocab", "name", "sha"),
    [(64, "bpe:64", "b" * 64), (128, "bpe:128", "a" * 64), (256, "bytes", "c" * 64)],
)
def test_other_tokens_are_refused_unless_allowed(tokens_sweep, tmp_path, capsys, vocab, name, sha):
    sweep, _ = tokens_sweep
    other = token_folder(tmp_path / "other", vocab, name, sha)
    argv = ["transfer", "--from", str(sweep), "--to", "width=32", "--data", other, "--dry-run"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--allow-data-change" in err and "bpe:64" in err
    assert main([*argv, "--allow-data-change"]) == 0
    out = capsys.readouterr().out
    assert "warning: the targets' data" in out and f"vocabulary {vocab}" in out


def test_proxy_folder_re_prepared_differently_is_refused(tokens_sweep, capsys):
    sweep, proxy = tokens_sweep
    shutil.rmtree(proxy)
    token_folder(Path(proxy), 64, "bpe:64", "f" * 64)  # same name and size, other merges
    assert main(["transfer", "--from", str(sweep), "--to", "width=32", "--dry-run"]) == 2
    assert "differ from the proxy's" in capsys.readouterr().err


def test_byte_corpora_share_tokens_and_old_fits_are_not_checked(sweep_dir, tmp_path):
    shakespeare = data_identity("shakespeare", None)
    assert same_tokens(shakespeare, data_identity("text", "any.txt"))
    prepared = {"corpus": "tokens", "vocab_size": 256, "tokenizer": {"name": "bytes"}}
    assert same_tokens(shakespeare, prepared)
    assert not same_tokens(data_identity("synthetic", None), data_identity("digits", None))
    old = tmp_path / "old"
    shutil.copytree(sweep_dir, old)
    doc = json.loads((old / "fit.json").read_text())
    del doc["data"]
    (old / "fit.json").write_text(json.dumps(doc))
    assert load_fit(old).data == {}
    other = token_folder(tmp_path / "bpe", 64, "bpe:64", "a" * 64)
    request = Request(parse_targets("width=32"), "supar", data=other)
    assert target_runs(load_source(old), request)[0].data.path == other

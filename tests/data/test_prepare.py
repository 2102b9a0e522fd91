"""``hptransfer data prepare``: round trips, the seeded document split, no-op re-runs, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from hptransfer import data
from hptransfer.cli.main import main
from hptransfer.config import DataConfig
from hptransfer.data import load_dataset, tokens
from hptransfer.data.documents import split_by_position
from hptransfer.data.encoders import decode
from hptransfer.data.prepare import Request, prepare

DOCS = [
    f"Doc {i}: ACT {i}.  Enter KING; exeunt.\n\tCafé — naïve «quote» 日本 {'x' * i}\n\n  end "
    for i in range(40)
]


def jsonl(tmp_path: Path, docs=DOCS, field: str = "text") -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({field: d, "id": i}) + "\n" for i, d in enumerate(docs)))
    return path


def split_docs(folder: Path, split: str) -> list[str]:
    meta = tokens.read_meta(folder)
    ids = np.fromfile(tokens.bin_path(folder, split), dtype=tokens.DTYPES[meta.dtype])
    if meta.eot_id is None:
        return [decode(folder, ids)]
    ends = np.flatnonzero(ids == meta.eot_id)
    assert ends[-1] == len(ids) - 1  # every document ends with <|endoftext|>
    return [decode(folder, part) for part in np.split(ids, ends + 1)[:-1] for part in [part[:-1]]]


def test_bpe_round_trip_and_split_by_document(tmp_path):
    out = tmp_path / "bpe"
    meta = prepare(Request((str(jsonl(tmp_path)),), out, tokenizer="bpe:300")).meta
    assert meta.vocab_size == 300 and meta.dtype == "uint16"
    assert meta.tokenizer["name"] == "bpe:300" and len(meta.tokenizer["sha256"]) == 64
    train, val = split_docs(out, "train"), split_docs(out, "val")
    assert train and val and len(train) + len(val) == len(DOCS)
    # decode(encode(x)) = x, each document whole in one split, in input order
    assert sorted(train + val, key=DOCS.index) == DOCS
    assert train == [d for d in DOCS if d in train] and val == [d for d in DOCS if d in val]
    assert meta.train_tokens < sum(len(d.encode()) for d in train)  # BPE merges bytes


def test_prepare_is_deterministic_and_seeded(tmp_path):
    source = str(jsonl(tmp_path))
    first, again, other = (tmp_path / name for name in ("a", "b", "c"))
    prepare(Request((source,), first, tokenizer="bpe:300"))
    prepare(Request((source,), again, tokenizer="bpe:300"))
    for name in ("train.bin", "val.bin", "meta.json", "tokenizer.json"):
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    prepare(Request((source,), other, tokenizer="bpe:300", seed=1))
    assert split_docs(other, "val") != split_docs(first, "val")


def test_rerun_is_a_no_op_and_other_inputs_are_refused(tmp_path, capsys):
    source = str(jsonl(tmp_path))
    out = tmp_path / "bytes"
    argv = ["data", "prepare", source, "--out", str(out)]
    assert main(argv) == 0
    stamp = (out / "train.bin").stat().st_mtime_ns
    assert main(argv) == 0
    assert "up to date" in capsys.readouterr().out
    assert (out / "train.bin").stat().st_mtime_ns == stamp
    assert main([*argv, "--seed", "3"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "train.bin").stat().st_mtime_ns == stamp
    assert main([*argv, "--seed", "3", "--force"]) == 0
    assert tokens.read_meta(out).source["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bytes", "docs.jsonl"]


def test_bytes_tokens_train_a_model(tmp_path):
    text = tmp_path / "a.txt"
    text.write_text("To be, or not to be: that is the question. " * 40)
    other = tmp_path / "b.txt"
    other.write_text("Whether 'tis nobler in the mind to suffer. " * 40)
    out = tmp_path / "tok"
    prepare(Request((str(text), str(other)), out, val_fraction=0.5, seed=0))
    meta = tokens.read_meta(out)
    assert (meta.vocab_size, meta.eot_id, meta.tokenizer["name"]) == (256, None, "bytes")
    assert sorted(split_docs(out, "train") + split_docs(out, "val")) == sorted(
        [text.read_text(), other.read_text()]
    )
    from hptransfer.config import ModelConfig, RunConfig, TrainConfig
    from hptransfer.train import complete_run, train

    data.load_dataset.cache_clear()
    run = RunConfig(
        model=ModelConfig(width=16, heads=2, context=16),
        data=DataConfig(corpus="tokens", path=str(out), seq_len=16, batch_size=4, eval_batches=1),
        train=TrainConfig(steps=2),
    )
    run = complete_run(run, load_dataset(run.data))
    assert run.model.input_size == 256
    assert np.isfinite(train(run).val_loss)


def test_parquet_column(tmp_path):
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"body": DOCS[:10], "n": list(range(10))}), path, row_group_size=3)
    out = tmp_path / "pq"
    prepare(Request((str(path),), out, column="body", val_fraction=0.3))
    assert sorted(split_docs(out, "train")[0] + split_docs(out, "val")[0]) == sorted(
        "".join(DOCS[:10])
    )
    x, _ = load_dataset(DataConfig(corpus="tokens", path=str(out), seq_len=8)).train_batch(
        2, 8, torch.Generator().manual_seed(0)
    )
    assert int(x.max()) < 256


BOOK = "".join(f"Line {i}: thou art more lovely and more temperate.\n" for i in range(200))


def test_one_text_file_is_split_by_position_at_a_line_boundary(tmp_path, capsys):
    path = tmp_path / "book.txt"
    path.write_text(BOOK)
    out = tmp_path / "tok"
    argv = ["data", "prepare", str(path), "--out", str(out), "--tokenizer", "bpe:300"]
    assert main(argv) == 0
    assert capsys.readouterr().err == ""  # the rule for a lone text file: no note
    (train,), (val,) = split_docs(out, "train"), split_docs(out, "val")
    assert train + val == BOOK and val.startswith("Line 180:")  # the last 10%, whole lines
    stamp = (out / "train.bin").read_bytes()
    assert main(argv) == 0 and "up to date" in capsys.readouterr().out
    again = tmp_path / "again"
    assert main([*argv[:3], "--out", str(again), *argv[5:]]) == 0
    for name in ("train.bin", "val.bin", "tokenizer.json"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    assert (out / "train.bin").read_bytes() == stamp


def test_split_by_position_takes_the_nearest_line_boundary():
    assert split_by_position("aaaa\nbbbb\ncc\n", 0.25) == ("aaaa\nbbbb\n", "cc\n")
    assert split_by_position("aaaaaaaa\nb", 0.5) == ("aaaaaaaa\n", "b")
    assert split_by_position("no line breaks", 0.5) == ("no line", " breaks")


@pytest.mark.parametrize("separator", ["blank", r"^=+ [^=]+ =+$"], ids=["blank line", "regex"])
def test_separator_cuts_text_into_documents_drawn_whole(tmp_path, capsys, separator):
    chapters = [f"Chapter {c}.\n{'word ' * (20 + c)}\n" for c in range(30)]
    glue = "\n  \n\n" if separator == "blank" else "\n= Title =\n"
    path = tmp_path / "chapters.txt"
    path.write_text(glue.join(chapters))
    out = tmp_path / "tok"
    argv = ["data", "prepare", str(path), "--out", str(out), "--tokenizer", "bpe:300"]
    assert main([*argv, "--separator", separator, "--val-fraction", "0.3"]) == 0
    assert capsys.readouterr().err == ""
    train, val = split_docs(out, "train"), split_docs(out, "val")
    assert train and val and len(train) + len(val) == len(chapters)
    assert sorted(d.strip() for d in train + val) == sorted(c.strip() for c in chapters)
    assert tokens.read_meta(out).source["separator"] == separator


def test_a_separator_that_never_matches_falls_back_to_position_and_says_so(tmp_path, capsys):
    path = tmp_path / "book.txt"
    path.write_text(BOOK)
    out = tmp_path / "tok"
    assert main(["data", "prepare", str(path), "--out", str(out), "--separator", "^CHAPTER"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not cut" in err and "split by position" in err, err
    train, val = split_docs(out, "train")[0], split_docs(out, "val")[0]
    assert train + val == BOOK and val.startswith("Line 180:")


def _bad_cases(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    good = str(jsonl(tmp_path))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    no_field = tmp_path / "nofield.jsonl"
    no_field.write_text('{"text": "a b c"}\n{"body": "d e f"}\n')
    not_json = tmp_path / "notjson.jsonl"
    not_json.write_text('{"text": "a"}\n{text\n')
    garbage = tmp_path / "garbage.json"
    garbage.write_text("not json at all")
    other_json = tmp_path / "other.json"
    other_json.write_text('{"model": {"type": "nothing"}}')
    return {
        "empty input": ([str(empty)], "holds no text"),
        "empty input, separator": ([str(empty), "--separator", "blank"], "holds no text"),
        "bad separator": ([good, "--separator", "(unclosed"], "not a regular expression"),
        "jsonl line without the field": ([str(no_field)], "nofield.jsonl:2: no field 'text'"),
        "jsonl not json": ([str(not_json)], "notjson.jsonl:2: not a JSON line"),
        "missing input": ([str(tmp_path / "nope.txt")], "not found"),
        "tokenizer not json": ([good, "--tokenizer", str(garbage)], "not a Hugging Face"),
        "json not a tokenizer": ([good, "--tokenizer", str(other_json)], "not a Hugging Face"),
        "tokenizer missing": ([good, "--tokenizer", str(tmp_path / "t.json")], "not found"),
        "tokenizer a folder": ([good, "--tokenizer", str(tmp_path)], "not a regular file"),
        "bad bpe size": ([good, "--tokenizer", "bpe:12"], "BPE vocabulary"),
        "bpe on empty": ([str(empty), "--tokenizer", "bpe:300"], "holds no text"),
        "bpe without field": ([str(no_field), "--tokenizer", "bpe:300"], "no field 'text'"),
        "bad fraction": ([good, "--val-fraction", "1.5"], "--val-fraction"),
        "one split empty": ([good, "--val-fraction", "0.001"], "the val split got 0 tokens"),
        "parquet without column": ([_parquet(tmp_path)], "no column 'text'"),
    }


def _parquet(tmp_path: Path) -> str:
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"body": ["a"]}), path)
    return str(path)


BAD_CASES = (
    "empty input",
    "empty input, separator",
    "bad separator",
    "jsonl line without the field",
    "jsonl not json",
    "missing input",
    "tokenizer not json",
    "json not a tokenizer",
    "tokenizer missing",
    "tokenizer a folder",
    "bad bpe size",
    "bpe on empty",
    "bpe without field",
    "bad fraction",
    "one split empty",
    "parquet without column",
)


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, capsys, case):
    cases = _bad_cases(tmp_path)
    assert set(cases) == set(BAD_CASES)
    inputs, message = cases[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "out" / "tok"
    assert main(["data", "prepare", *inputs, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hptransfer: error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert not out.exists()
    leftovers = list((tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []
    assert leftovers == [] and sorted(p.name for p in tmp_path.iterdir() if p.name != "out") == (
        before
    )

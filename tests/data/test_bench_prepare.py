"""``hptransfer bench prepare`` on a stand-in corpus: every row measured, files written."""

from __future__ import annotations

import pandas as pd
import pytest

from hptransfer.cli.main import main
from hptransfer.data import shakespeare


@pytest.mark.slow  # a benchmark-as-test (BPE training, matplotlib)
def test_bench_prepare_writes_table_figure_and_summary(tmp_path, monkeypatch, capsys):
    plays = {f"play-{i}": f"ACT {i}. Enter a king; exeunt all. " * (20 + i) for i in range(12)}
    monkeypatch.setattr(shakespeare, "load_plays", lambda: plays)
    out = tmp_path / "bench" / "prepare.parquet"
    assert main(["bench", "prepare", "--vocab", "300", "--out", str(out.parent)]) == 0
    table = pd.read_parquet(out)
    assert list(table["input"]) == ["text", "jsonl", "parquet", "jsonl", "jsonl", "parquet"]
    assert (table["mib_per_s"] > 0).all() and (table["mib_per_cpu_s"] > 0).all()
    size = sum(len(t) for t in plays.values())
    assert (table.loc[table["tokenizer"].eq("bytes"), "tokens"] == size).all()
    bpe = table[table["tokenizer"].ne("bytes")]
    assert len(bpe) == 3 and bpe["tokens"].nunique() == 1 and bpe["tokens"].iloc[0] < size
    assert out.with_suffix(".png").stat().st_size > 0
    assert "MiB of input files" in out.with_suffix(".md").read_text()

"""``hptransfer bench prepare``: ``data prepare`` throughput, MB of input per second.

The shipped Shakespeare (38 plays, 4.7 MiB) is written out once as inputs of each kind (one
text file per play, one JSONL, one Parquet) and prepared with each tokenizer: ``bytes``,
``bpe:<vocab>`` (training the BPE, then encoding) and the ``tokenizer.json`` that training
wrote (encoding only). The whole command is timed, hashing the inputs included; the
machine's 1-minute load average is stored beside every row, since on a shared box the
figures say as much about the neighbours as about the code.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from hptransfer.bench import add_out_folder, save_png, subplots
from hptransfer.store import write_frame, write_text

MIB = 2**20


def write_inputs(folder: Path) -> dict[str, list[str]]:
    """The plays as text files, JSONL and Parquet under ``folder``; the inputs per kind."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hptransfer.data.shakespeare import load_plays

    plays = load_plays()
    texts = folder / "text"
    texts.mkdir()
    for name, text in plays.items():
        (texts / f"{name}.txt").write_text(text, encoding="utf-8")
    jsonl = folder / "plays.jsonl"
    lines = (json.dumps({"text": text}, ensure_ascii=False) + "\n" for text in plays.values())
    jsonl.write_text("".join(lines), encoding="utf-8")
    parquet = folder / "plays.parquet"
    pq.write_table(pa.table({"text": list(plays.values())}), parquet)
    return {
        "text": sorted(str(p) for p in texts.iterdir()),
        "jsonl": [str(jsonl)],
        "parquet": [str(parquet)],
    }


def timed(inputs: list[str], out: Path, tokenizer: str) -> dict:
    from hptransfer.data.prepare import Request, prepare

    start, cpu_start = time.perf_counter(), time.process_time()
    outcome = prepare(Request(tuple(inputs), out, tokenizer=tokenizer))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    meta = outcome.meta
    return {
        "input_mib": outcome.input_bytes / MIB,
        "seconds": seconds,
        "mib_per_s": outcome.input_bytes / MIB / seconds,
        "cpu_s": cpu,
        "mib_per_cpu_s": outcome.input_bytes / MIB / cpu,
        "tokens": meta.train_tokens + meta.val_tokens,
        "vocab_size": meta.vocab_size,
        "load_avg_1min": os.getloadavg()[0],
    }


def run_bench(vocab: int, folder: Path) -> pd.DataFrame:
    inputs = write_inputs(folder)
    bpe = f"bpe:{vocab}"
    trained = folder / "jsonl-bpe"
    cases = [
        ("text", "bytes", "bytes"),
        ("jsonl", "bytes", "bytes"),
        ("parquet", "bytes", "bytes"),
        ("jsonl", bpe, f"{bpe} (train + encode)"),
        ("jsonl", str(trained / "tokenizer.json"), "tokenizer.json (encode)"),
        ("parquet", str(trained / "tokenizer.json"), "tokenizer.json (encode)"),
    ]
    rows = []
    for kind, tokenizer, label in cases:
        out = trained if tokenizer == bpe else folder / f"out-{len(rows)}"
        row = {"input": kind, "tokenizer": label, **timed(inputs[kind], out, tokenizer)}
        print(f"{kind:8} {label:26} {row['mib_per_s']:7.2f} MiB/s  ({row['seconds']:.1f} s)")
        rows.append(row)
    return pd.DataFrame(rows)


def plot(frame: pd.DataFrame, path: Path) -> None:
    labels = [f"{r.input}\n{r.tokenizer.replace(' (', chr(10) + '(')}" for r in frame.itertuples()]
    fig, ax = subplots(figsize=(9, 4))
    x = range(len(frame))
    for offset, column, label in ((-0.2, "mib_per_s", "wall clock"), (0.2, "mib_per_cpu_s", "CPU")):
        bars = ax.bar([i + offset for i in x], frame[column], width=0.4, label=f"per {label} s")
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(list(x), labels, fontsize=7)
    ax.set_ylabel("MiB of input per second")
    ax.legend(fontsize=8)
    load = frame["load_avg_1min"].mean()
    ax.set_title(
        f"hptransfer data prepare: Shakespeare ({frame['input_mib'].iloc[0]:.1f} MiB), "
        f"{len(os.sched_getaffinity(0))} CPUs, load average ≈ {load:.0f}",
        fontsize=9,
    )
    save_png(fig, path)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("prepare", help="data prepare throughput (MiB/s of input)")
    parser.add_argument("--vocab", type=int, default=4096, help="BPE vocabulary (4096)")
    add_out_folder(parser, "prepare.parquet", "prepare.png", "prepare.md")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="hpt-bp-") as root:
        table = run_bench(args.vocab, Path(root))
    args.out.mkdir(parents=True, exist_ok=True)
    path, figure, summary = (args.out / f"prepare.{ext}" for ext in ("parquet", "png", "md"))
    write_frame(path, table)
    text = table.round(3).to_string(index=False)
    plot(table, figure)
    write_text(
        summary,
        "# bench prepare: `hptransfer data prepare` on the shipped Shakespeare\n\n"
        f"```text\n{text}\n```\n\nmib_per_s: MiB of input files (text, JSON lines, "
        "compressed Parquet) per second of the whole command (hashing the inputs, "
        "splitting, BPE training where named, encoding, writing); mib_per_cpu_s: per "
        "second of this process's CPU time (all its threads), "
        "which the neighbours' load changes less. load_avg_1min: this machine's load while "
        f"each row ran ({len(os.sched_getaffinity(0))} CPUs).\n",
    )
    print(f"wrote {path}, {figure} and {summary}")
    return 0

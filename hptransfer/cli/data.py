"""``hptransfer data prepare INPUT... --out data/<name> --tokenizer ...``: a token folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hptransfer.cli.options import fields_from


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="prepare training data (token folders)")
    inner = parser.add_subparsers(dest="data_command", required=True, parser_class=type(parser))
    prepare = inner.add_parser(
        "prepare",
        help="tokenize text, JSONL or Parquet documents into train.bin, val.bin and meta.json",
        description="Tokenize documents (a text file is one, or several cut at --separator; "
        "a JSONL line or a Parquet row is one; builtin:shakespeare is the shipped plays, one "
        "per play) into a folder for data.corpus: tokens. Documents are split between train "
        "and validation by a seeded draw; a text file that is the only input, or that "
        "--separator does not cut, is split by position (its last --val-fraction, at a line "
        "boundary, is the validation split). Re-running with the same inputs and settings "
        "does nothing.",
    )
    prepare.add_argument("inputs", nargs="+", metavar="INPUT", help="text, .jsonl or .parquet")
    prepare.add_argument("--out", type=Path, required=True, help="the folder, e.g. data/mine")
    prepare.add_argument(
        "--tokenizer",
        default="bytes",
        help="bytes (UTF-8 bytes, vocabulary 256), bpe:<vocab> (a byte-level BPE trained here "
        "on the train split) or the path of a tokenizer.json (default: bytes)",
    )
    prepare.add_argument("--field", default="text", help="JSONL field holding the text")
    prepare.add_argument("--column", default="text", help="Parquet column holding the text")
    prepare.add_argument(
        "--val-fraction", type=float, default=0.1, help="share of documents held out (0.1)"
    )
    prepare.add_argument(
        "--separator",
        metavar="SEP",
        help="cut text files into documents at SEP: 'blank' (a blank line) or a regular "
        "expression (^ and $ match at line boundaries), e.g. '^=+ .* =+$'",
    )
    prepare.add_argument("--seed", type=int, default=0, help="seed of the split (0)")
    prepare.add_argument(
        "--force", action="store_true", help="replace an --out prepared from other inputs"
    )
    prepare.set_defaults(func=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    from hptransfer.data.prepare import Request, prepare, progress_printer

    request = Request(**fields_from(args, Request, inputs=tuple(args.inputs)))
    outcome = prepare(request, progress=progress_printer())
    for note in outcome.notes:
        print(f"note: {note}", file=sys.stderr)
    meta = outcome.meta
    if outcome.skipped:
        print(f"{outcome.folder} is up to date (prepared from the same inputs and settings)")
        return 0
    rate = outcome.input_bytes / 2**20 / max(outcome.seconds, 1e-9)
    print(
        f"{outcome.folder}: {meta.train_tokens:,} train and {meta.val_tokens:,} validation "
        f"tokens, vocabulary {meta.vocab_size} ({meta.tokenizer['name']}), {meta.dtype}; "
        f"{outcome.input_bytes / 2**20:,.1f} MiB of input in {outcome.seconds:.1f} s "
        f"({rate:,.2f} MiB/s)"
    )
    return 0

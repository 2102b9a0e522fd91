"""``python -m hptransfer.cli.holdout results/<study> results/<held-out>``: how well a fitted
budget line predicts a held-back budget, as a markdown table and ``holdout.json``."""

from __future__ import annotations

import argparse
from pathlib import Path

from hptransfer.analysis.report import holdout_report
from hptransfer.errors import HPTransferError


def main(argv: list[str] | None = None) -> int:
    """The held-out table as markdown on stdout, and as ``holdout.json`` in the study's folder;
    a bad folder is one line on stderr and exit code 2."""
    parser = argparse.ArgumentParser(prog="python -m hptransfer.cli.holdout")
    parser.add_argument("study", type=Path, help="the fitted sweep over several budgets")
    parser.add_argument("held_back", type=Path, help="the fitted sweep at the held-back budget")
    args = parser.parse_args(argv)
    try:
        text = holdout_report(args.study, args.held_back)
    except HPTransferError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

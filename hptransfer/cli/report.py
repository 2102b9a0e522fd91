"""``python -m hptransfer.cli.report [README.md ...]``: regenerate the fitted-optima tables
marked in each file (:mod:`hptransfer.analysis.report`; default: every study's write-up,
``results/*/README.md``)."""

from __future__ import annotations

import sys

from hptransfer.analysis.report import regenerate_all


def main(argv: list[str] | None = None) -> int:
    names = sys.argv[1:] if argv is None else argv
    for name, tables in regenerate_all(names).items():
        print(f"{name}: {tables} tables")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``hptransfer`` entry point: one thin module per subcommand over the library.

Every user-facing error (:class:`hptransfer.errors.HPTransferError`) ends as one line on
stderr and exit code 2; Ctrl-C exits 130 without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from hptransfer.errors import HPTransferError

# Subcommand modules, each with ``register(subparsers)`` that sets ``func`` on its parser.
SUBCOMMANDS = (
    "hptransfer.cli.plan",
    "hptransfer.cli.coord_check",
    "hptransfer.cli.sweep",
    "hptransfer.cli.bench",
    "hptransfer.cli.fit",
    "hptransfer.cli.plot",
    "hptransfer.cli.merge",
    "hptransfer.cli.transfer",
    "hptransfer.cli.selftest",
    "hptransfer.cli.data",
)


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise HPTransferError(f"{message} (see {self.prog} --help)")


class _VersionAction(argparse.Action):
    """``--version``: what every stored run records as its provenance (torch imported only here)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object):
        super().__init__(option_strings, dest, nargs=0, **kwargs)  # type: ignore[arg-type]

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        import torch

        from hptransfer import provenance
        from hptransfer.kernels.selfcheck import auto_choice

        device = "cuda" if torch.cuda.is_available() else "cpu"
        print(provenance.describe(device))
        print(f"kernel auto -> {auto_choice(torch.device(device))}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(prog="hptransfer", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="verbose output")
    parser.add_argument(
        "--version",
        action=_VersionAction,
        help="print the versions of hptransfer, torch, triton, ray and optuna, the device "
        "and the git commit, then exit",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in SUBCOMMANDS:
        importlib.import_module(module).register(subparsers)
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    # `kill PID` stops as Ctrl-C does: the finished runs kept, one line, exit 130.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s"
        )
        return int(args.func(args) or 0)
    except HPTransferError as exc:
        print(f"hptransfer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hptransfer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `hptransfer plan | head`: stop quietly, like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())

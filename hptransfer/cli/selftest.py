"""``hptransfer selftest``: the Triton kernels against the torch reference on this device."""

from __future__ import annotations

import argparse

DTYPES = ("float32", "float16", "bfloat16")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "selftest",
        help="check the Triton kernels against the torch reference on this device",
        description="Runs the masked-linear self-check that kernel: auto needs before it uses "
        "Triton (a few shapes, forward and backward), prints the device and the result, and "
        "caches it for later runs. Exit code 1 if the check fails (auto then uses torch).",
    )
    parser.add_argument(
        "--dtype",
        action="append",
        choices=DTYPES,
        help="dtype to check (repeatable; default: all three on a GPU, float32 on a CPU)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hptransfer.kernels.selfcheck import self_test

    result = self_test(args.dtype or ())
    print(result.device_line())
    if not result.verdicts:
        print(
            "CPU only: the Triton kernels need a CUDA GPU (or TRITON_INTERPRET=1 for Triton's "
            "slow CPU interpreter), so kernel auto uses the torch kernels here"
        )
        return 0
    for verdict in result.verdicts:
        print(verdict.line())
    where = "under Triton's CPU interpreter; " if result.device.type == "cpu" else ""
    print(f"{where}cached in {result.cache}")
    return 0 if result.ok else 1

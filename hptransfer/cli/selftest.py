"""``hptransfer selftest``: the Triton kernels against the torch reference on this device."""

from __future__ import annotations

import argparse
import os

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
    import torch

    from hptransfer import provenance
    from hptransfer.kernels import selfcheck

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    versions = provenance.versions()
    print(
        f"device {provenance.device_name(str(device))} (torch {versions['torch_version']}, "
        f"triton {versions['triton_version'] or 'not installed'})"
    )
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        print(
            "CPU only: the Triton kernels need a CUDA GPU (or TRITON_INTERPRET=1 for Triton's "
            "slow CPU interpreter), so kernel auto uses the torch kernels here"
        )
        return 0
    dtypes = args.dtype or (DTYPES if device.type == "cuda" else ("float32",))
    failed = 0
    for name in dtypes:
        dtype = getattr(torch, name)
        verdict = selfcheck.run_check(device, dtype)
        selfcheck.record(device, dtype, verdict)
        print(verdict.line())
        failed += not verdict.ok
    where = "under Triton's CPU interpreter; " if device.type == "cpu" else ""
    print(f"{where}cached in {selfcheck.cache_path()}")
    return 1 if failed else 0

"""First-use self-check of the Triton kernels against the torch reference.

``kernel: auto`` picks Triton on a GPU only once :func:`triton_ok` has passed there: a few
shapes (unstructured and block masks, with and without a bias) run forward and backward
through the Triton masked linear and :func:`reference_masked_linear`, and every output and
gradient must agree within the dtype's tolerance. A failure (wrong numbers, or any error
while compiling or launching) makes ``auto`` use the torch kernels, with one warning line.

The verdict is cached per device, dtype and hptransfer/torch/triton versions: in memory, and
in ``kernel-selfcheck.json`` under the user's cache folder (``$HPTRANSFER_CACHE_DIR``, else
``$XDG_CACHE_HOME/hptransfer``, else ``~/.cache/hptransfer``), so each machine pays for it
once per installation. ``hptransfer selftest`` runs it afresh (:func:`self_test`) and prints the
verdicts.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from hptransfer.atomic import replace_atomically
from hptransfer.kernels.block_layout import BlockLayout, block_layout
from hptransfer.kernels.torch_masked import reference_masked_linear
from hptransfer.kernels.triton_loader import triton_kernels

log = logging.getLogger(__name__)

CACHE_FILE = "kernel-selfcheck.json"
# (tokens, in, out, mask kind, block, bias): ragged edges, a block layout, no bias.
SHAPES = (
    (37, 64, 48, "element", 0, True),
    (64, 128, 128, "block", 64, True),
    (16, 96, 80, "element", 0, False),
)
DENSITY = 0.4
# Largest |kernel − reference| allowed, relative to the reference's largest magnitude.
TOLERANCE = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 3e-2}

# kernel(x, weight, mask, bias, layout) -> y, like ``triton_masked_linear``
Kernel = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, BlockLayout | None],
    torch.Tensor,
]


@dataclass(frozen=True)
class Verdict:
    """The self-check's result on one device and dtype; ``detail`` says what failed."""

    ok: bool
    device: str
    dtype: str
    detail: str
    checked_at: str

    def line(self) -> str:
        status = "passed" if self.ok else f"FAILED ({self.detail})"
        return f"Triton kernels vs the torch reference on {self.device}, {self.dtype}: {status}"


def check(device: torch.device, dtype: torch.dtype, kernel: Kernel) -> Verdict:
    """Run ``kernel`` against the reference on every shape, forward and backward."""
    from hptransfer.provenance import device_name

    try:
        problems = [p for shape in SHAPES if (p := _compare(kernel, device, dtype, *shape))]
    except Exception as exc:  # a compile or launch error is a failed check, not a crash
        problems = [f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"]
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return Verdict(not problems, device_name(str(device)), str(dtype), "; ".join(problems), now)


def _compare(
    kernel: Kernel,
    device: torch.device,
    dtype: torch.dtype,
    tokens: int,
    fan_in: int,
    fan_out: int,
    kind: str,
    block: int,
    bias: bool,
) -> str:
    """ "" when ``kernel`` matches the reference on this shape, else what differs."""
    gen = torch.Generator().manual_seed(tokens * fan_in + fan_out)
    mask = _mask(fan_out, fan_in, block, gen)
    weight = torch.randn(fan_out, fan_in, generator=gen) * mask / fan_in**0.5
    x = torch.randn(tokens, fan_in, generator=gen)
    b = torch.randn(fan_out, generator=gen) if bias else None
    grad_out = torch.randn(tokens, fan_out, generator=gen)
    mask = mask.to(device)
    layout = block_layout(mask, block) if block else None
    inputs = [t.to(device, dtype) for t in (x, weight, *([b] if bias else []))]
    got = _outputs(lambda *a: kernel(*a, layout), inputs, mask, grad_out.to(device, dtype))
    want = _outputs(reference_masked_linear, inputs, mask, grad_out.to(device, dtype))
    names = ("y", "dx", "dW", "db")
    errors = [
        f"{name} off by {err:.2g}"
        for name, g, w in zip(names, got, want, strict=False)
        if (err := _relative_error(g, w)) > TOLERANCE[dtype]
    ]
    return f"{tokens}×{fan_in}→{fan_out} {kind}: {', '.join(errors)}" if errors else ""


def _mask(rows: int, cols: int, block: int, gen: torch.Generator) -> torch.Tensor:
    """A random bool mask of about ``DENSITY``: per element, or per ``block × block`` tile."""
    if not block:
        return torch.rand(rows, cols, generator=gen) < DENSITY
    tiles = torch.rand(-(-rows // block), -(-cols // block), generator=gen) < DENSITY
    tiles[0, 0] = True  # at least one non-empty block
    full = tiles.repeat_interleave(block, 0).repeat_interleave(block, 1)
    return full[:rows, :cols].contiguous()


def _outputs(
    fn: Callable[..., torch.Tensor],
    inputs: list[torch.Tensor],
    mask: torch.Tensor,
    grad_out: torch.Tensor,
) -> list[torch.Tensor]:
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    x, weight, *bias = leaves
    y = fn(x, weight, mask, bias[0] if bias else None)
    return [y.detach(), *torch.autograd.grad(y, leaves, grad_out)]


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    if got.shape != want.shape:
        return float("inf")
    scale = want.abs().max().float().clamp_min(1e-6)
    return float(((got.float() - want.float()).abs().max() / scale).nan_to_num(float("inf")))


# ----------------------------------------------------------------------------- cached verdict

_VERDICTS: dict[str, Verdict] = {}


def cache_path() -> Path:
    root = os.environ.get("HPTRANSFER_CACHE_DIR")
    if root:
        return Path(root) / CACHE_FILE
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hptransfer" / CACHE_FILE


def cache_key(device: torch.device, dtype: torch.dtype) -> str:
    from hptransfer.provenance import device_name, versions

    v = versions()
    return (
        f"{device_name(str(device))} | {dtype} | hptransfer {v['hptransfer_version']} | "
        f"torch {v['torch_version']} | triton {v['triton_version']}"
    )


def triton_ok(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the Triton kernels passed their self-check on ``device`` and ``dtype``
    (checked on first use, then cached); a failure logs one warning line."""
    key = cache_key(device, dtype)
    if key not in _VERDICTS:
        verdict = _read_cache().get(key)
        if verdict is None:
            verdict = record(device, dtype, run_check(device, dtype))
        _VERDICTS[key] = verdict
        if not verdict.ok:
            log.warning("warning: %s; kernel auto uses the torch kernels", verdict.line())
    return _VERDICTS[key].ok


def auto_choice(device: torch.device, dtype: torch.dtype = torch.float32) -> str:
    """What ``kernel: auto`` uses on ``device`` as far as is known, without running the check."""
    if device.type != "cuda":
        return "torch (Triton is used on CUDA GPUs only)"
    verdict = _VERDICTS.get(cache_key(device, dtype)) or _read_cache().get(cache_key(device, dtype))
    if verdict is None:
        return "triton if its self-check passes on first use (run: hptransfer selftest)"
    if verdict.ok:
        return f"triton (self-check passed {verdict.checked_at})"
    return f"torch (Triton's self-check failed {verdict.checked_at}: {verdict.detail})"


def run_check(device: torch.device, dtype: torch.dtype) -> Verdict:
    """The self-check of the real Triton kernels (a missing triton is a failed check)."""
    try:
        kernel = triton_kernels().triton_masked_linear
    except Exception as exc:
        kernel = _raiser(exc)
    return check(device, dtype, kernel)


def _raiser(exc: Exception) -> Kernel:
    def kernel(*_: object) -> torch.Tensor:
        raise exc

    return kernel


def _read_cache() -> dict[str, Verdict]:
    try:
        doc = json.loads(cache_path().read_text())
        return {key: Verdict(**value) for key, value in doc.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}  # none yet, or unreadable: check again


def record(device: torch.device, dtype: torch.dtype, verdict: Verdict) -> Verdict:
    """Cache ``verdict`` for this device, dtype and versions (in memory and on disk)."""
    key = cache_key(device, dtype)
    _VERDICTS[key] = verdict
    _write_cache(key, verdict)
    return verdict


def _write_cache(key: str, verdict: Verdict) -> None:
    """Best effort: a read-only home only means checking again in the next process."""
    path = cache_path()
    doc = {k: asdict(v) for k, v in {**_read_cache(), key: verdict}.items()}
    text = json.dumps(doc, indent=1) + "\n"
    with contextlib.suppress(OSError):  # an atomic write leaves no temp file behind
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(path, lambda handle: handle.write(text.encode()))


# ----------------------------------------------------------------------------- hptransfer selftest


@dataclass(frozen=True)
class SelfTest:
    """What ``hptransfer selftest`` found on this machine's device: a fresh verdict per dtype
    checked (cached), none where the Triton kernels cannot run (a CPU without Triton's
    interpreter)."""

    device: torch.device
    verdicts: tuple[Verdict, ...] = ()
    cache: Path = field(default_factory=cache_path)

    @property
    def ok(self) -> bool:
        return all(verdict.ok for verdict in self.verdicts)

    def device_line(self) -> str:
        from hptransfer.provenance import device_name, versions

        v = versions()
        return (
            f"device {device_name(str(self.device))} (torch {v['torch_version']}, "
            f"triton {v['triton_version'] or 'not installed'})"
        )


def self_test(dtypes: Sequence[str] = ()) -> SelfTest:
    """Check the Triton kernels afresh on this machine's device in each named dtype (default:
    every dtype of :data:`TOLERANCE` on a GPU, float32 on a CPU) and cache each verdict; no
    check on a CPU unless ``TRITON_INTERPRET=1`` (Triton's CPU interpreter)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        return SelfTest(device)
    chosen = [getattr(torch, name) for name in dtypes] or (
        list(TOLERANCE) if device.type == "cuda" else [torch.float32]
    )
    return SelfTest(device, tuple(record(device, d, run_check(device, d)) for d in chosen))

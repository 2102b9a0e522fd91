"""The Triton self-check: it catches a wrong kernel, and ``kernel: auto`` then falls back."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hptransfer import kernels, provenance
from hptransfer.cli.main import main
from hptransfer.kernels import selfcheck
from hptransfer.kernels.torch_masked import torch_masked_linear

CPU = torch.device("cpu")


def right(x, weight, mask, bias, layout):
    return torch_masked_linear(x, weight, mask, bias)


def unmasked_grad(x, weight, mask, bias, layout):
    """Right forward, but dW not masked: masked weights would come back to life."""
    return F.linear(x, weight, bias)


def raising(x, weight, mask, bias, layout):
    raise RuntimeError("PTX compile error\nsecond line")


def test_a_correct_kernel_passes() -> None:
    verdict = selfcheck.check(CPU, torch.float32, right)
    assert verdict.ok and verdict.detail == "" and verdict.line().endswith("passed")


def test_a_wrong_kernel_is_caught_naming_what_differs() -> None:
    verdict = selfcheck.check(CPU, torch.float32, unmasked_grad)
    assert not verdict.ok and "dW off by" in verdict.detail and "y off" not in verdict.detail
    crashed = selfcheck.check(CPU, torch.float32, raising)
    assert not crashed.ok and crashed.detail == "RuntimeError: PTX compile error second line"
    assert "\n" not in crashed.line()


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HPTRANSFER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(selfcheck, "_VERDICTS", {})
    monkeypatch.setattr(kernels, "_triton_importable", lambda: True)  # as on a GPU machine
    monkeypatch.setattr(provenance, "device_name", lambda device="cpu": f"{device} stand-in")
    return tmp_path / selfcheck.CACHE_FILE


def _stand_in(monkeypatch: pytest.MonkeyPatch, kernel) -> list[str]:
    """Make the self-check run ``kernel`` on the CPU in place of Triton on the GPU."""
    calls: list[str] = []

    def run_check(device, dtype):
        calls.append(str(device))
        return selfcheck.check(CPU, dtype, kernel)

    monkeypatch.setattr(selfcheck, "run_check", run_check)
    return calls


def test_auto_falls_back_to_torch_with_one_warning_and_caches_it(
    fresh_cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = _stand_in(monkeypatch, unmasked_grad)
    cuda = torch.device("cuda")
    with caplog.at_level(logging.WARNING):
        assert kernels.resolve_backend("auto", cuda) == "torch"
        assert kernels.resolve_backend("auto", cuda) == "torch"  # every forward asks
    assert calls == ["cuda"]
    (warning,) = caplog.messages
    assert "FAILED (" in warning and warning.endswith("kernel auto uses the torch kernels")
    (stored,) = json.loads(fresh_cache.read_text()).values()
    assert stored["ok"] is False and "dW off by" in stored["detail"]
    # a new process reads the verdict instead of checking again
    monkeypatch.setattr(selfcheck, "_VERDICTS", {})
    assert kernels.resolve_backend("auto", cuda) == "torch" and calls == ["cuda"]
    assert selfcheck.auto_choice(cuda).startswith("torch (Triton's self-check failed")
    # another dtype is another check
    assert kernels.resolve_backend("auto", cuda, torch.float16) == "torch" and len(calls) == 2


def test_auto_uses_triton_once_the_check_passes(
    fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stand_in(monkeypatch, right)
    cuda = torch.device("cuda")
    assert selfcheck.auto_choice(cuda).startswith("triton if its self-check passes")
    assert kernels.resolve_backend("auto", cuda) == "triton"
    assert selfcheck.auto_choice(cuda).startswith("triton (self-check passed")
    assert kernels.resolve_backend("auto", CPU) == "torch"  # no GPU: never Triton
    assert kernels.resolve_backend("torch", torch.device("cuda")) == "torch"


def test_an_unwritable_cache_only_means_checking_again(
    fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = fresh_cache.parent / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("HPTRANSFER_CACHE_DIR", str(blocker))  # cannot hold a file, even for root
    calls = _stand_in(monkeypatch, right)
    assert kernels.resolve_backend("auto", torch.device("cuda")) == "triton"
    monkeypatch.setattr(selfcheck, "_VERDICTS", {})
    assert kernels.resolve_backend("auto", torch.device("cuda")) == "triton"
    assert len(calls) == 2 and blocker.read_text() == ""


def test_selftest_reports_a_failed_check_in_one_line(
    fresh_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # as if Triton could run here
    _stand_in(monkeypatch, raising)
    assert main(["selftest"]) == 1
    out, err = capsys.readouterr()
    device, verdict, cached = out.splitlines()
    assert device.startswith("device cpu") and err == ""
    assert verdict.endswith("float32: FAILED (RuntimeError: PTX compile error second line)")
    assert cached.endswith(str(fresh_cache)) and fresh_cache.is_file()


def test_selftest_on_a_cpu_says_it_is_cpu_only(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert main(["selftest"]) == 0
    assert "CPU only" in capsys.readouterr().out


def test_selftest_runs_the_real_triton_kernels_under_the_interpreter(tmp_path: Path) -> None:
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1", "HPTRANSFER_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "hptransfer.cli.main", "selftest"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "torch.float32: passed" in done.stdout

"""Gradient accumulation under data parallelism exchanges gradients once per optimizer step:
the micro-batches before the last accumulate locally (DDP ``no_sync``), same result."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from hptransfer.distributed.parallel import without_gradient_sync
from hptransfer.train import train_step


@contextlib.contextmanager
def one_process_group() -> Iterator[None]:
    # an in-process store: no TCP port to collide with another process's
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 8)
        self.head = nn.Linear(8, 11)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def _step(model: nn.Module, micro: int, accumulating) -> tuple[float, torch.Tensor]:
    torch.manual_seed(0)
    x, y = torch.randint(0, 11, (8, 5)), torch.randint(0, 11, (8, 5))
    batches = list(zip(x.split(micro), y.split(micro), strict=True))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = train_step(model, optimizer, batches, None, accumulating=accumulating)
    return loss, next(model.parameters()).detach().clone()


@pytest.mark.parametrize("micro", [8, 2])
def test_ddp_exchanges_gradients_once_per_step(micro: int) -> None:
    exchanges = []

    def counting_hook(state, bucket):
        exchanges.append(bucket.index())
        future = torch.futures.Future()
        future.set_result(bucket.buffer())
        return future

    torch.manual_seed(1)
    plain = Tiny()
    with one_process_group():
        torch.manual_seed(1)
        ddp = DistributedDataParallel(Tiny())
        ddp.register_comm_hook(None, counting_hook)
        loss, weight = _step(ddp, micro, without_gradient_sync(ddp))
    reference_loss, reference = _step(plain, micro, without_gradient_sync(plain))
    assert len(set(exchanges)) == len(exchanges)  # each bucket once: one exchange per step
    assert exchanges
    assert loss == pytest.approx(reference_loss, rel=1e-6)
    torch.testing.assert_close(weight, reference)


def test_one_worker_needs_no_context() -> None:
    assert without_gradient_sync(Tiny()) is contextlib.nullcontext

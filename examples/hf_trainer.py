"""A Hugging Face ``LlamaForCausalLM`` trained by a ``transformers.Trainer`` under SμPar.

The Trainer subclass overrides ``create_optimizer`` (the per-parameter groups of
:mod:`hptransfer.own`) and ``create_scheduler`` (a ``LambdaLR`` of the project's schedule, so
every group keeps its own LR); nothing else of the Trainer changes. The model is built from
a small config (no hub access) and parametrized at a wide, sparse shape with base HPs tuned
at width 64. Run:

    python examples/hf_trainer.py --width 256 --density 0.25 --steps 100
"""

from __future__ import annotations

import argparse
import functools
import tempfile

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

import hptransfer.own as hpo
from hptransfer.config import DataConfig, TrainConfig
from hptransfer.data import load_dataset
from hptransfer.optim import lr_factor_at


class Windows(torch.utils.data.Dataset):
    """``count`` random token windows of the training split, for the Trainer."""

    def __init__(self, dataset, count: int, seq_len: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x, _ = dataset.train_batch(count, seq_len, generator)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.x[i], "labels": self.x[i]}  # the model shifts the labels


class SuParTrainer(Trainer):
    """A Trainer whose optimizer and schedule come from the parametrized model."""

    def __init__(self, *args, schedule: TrainConfig, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.schedule = schedule

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            self.optimizer = hpo.build_optimizer(model or self.model, betas=self.schedule.betas)
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None:
            factor = functools.partial(lr_factor_at, train=self.schedule)
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer or self.optimizer, factor
            )
        return self.lr_scheduler


def llama(width: int, vocab: int, depth: int, context: int) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=width,
        intermediate_size=2 * 4 * width // 3,
        num_hidden_layers=depth,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=context,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--density", type=float, default=0.25)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--base-width", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2.0**-6, help="base η")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    dataset = load_dataset(DataConfig(corpus="shakespeare", seq_len=args.seq_len))

    def build(width: int) -> LlamaForCausalLM:
        return llama(width, dataset.input_size, args.depth, args.seq_len)

    model = build(args.width)
    hpo.parametrize(
        model,
        base=lambda: build(args.base_width),
        parameterization="supar",
        density=args.density,
        hps={"lr": args.lr, "weight_decay": 0.1},
        seed=0,
    )
    hpo.describe(model)
    schedule = TrainConfig(steps=args.steps, warmup_steps=args.steps // 10)
    with tempfile.TemporaryDirectory() as out:
        training = TrainingArguments(
            output_dir=out,
            max_steps=args.steps,
            per_device_train_batch_size=args.batch_size,
            logging_steps=max(1, args.steps // 10),
            max_grad_norm=1.0,
            report_to=[],
            save_strategy="no",
            use_cpu=True,
            disable_tqdm=True,
        )
        windows = Windows(dataset, args.steps * args.batch_size, args.seq_len)
        trainer = SuParTrainer(model=model, args=training, train_dataset=windows, schedule=schedule)
        result = trainer.train()
    print(f"final train loss {result.training_loss:.4f}")
    return result.training_loss


if __name__ == "__main__":
    main()

"""d·ρ, tokens per non-zero (non-embedding) parameter, and the SμPar warning of plan/transfer."""

import dataclasses

import pytest

from hptransfer.cli.main import main
from hptransfer.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from hptransfer.sparse_evidence import LOSSES, sparse_budget, sparse_lines, supar_warning

VOCAB = 4096


def llama(width=64, density=1 / 16, steps=100, parameterization="supar"):
    model = ModelConfig(
        block="llama", width=width, density=density, depth=2, heads=4, context=64,
        input_size=VOCAB, output_size=VOCAB,
    )  # fmt: skip
    return RunConfig(
        model=model,
        data=DataConfig(batch_size=16, seq_len=64),
        train=TrainConfig(steps=steps),
        parameterization=parameterization,
    )


@pytest.mark.parametrize(("width", "density"), [(64, 1.0), (64, 1 / 16), (128, 1 / 4)])
def test_counts_follow_the_llama_shapes(width, density):
    budget = sparse_budget(llama(width, density, steps=300))
    hidden = 2 * 4 * width // 3  # SwiGLU: 2/3 of the 4·d FFN
    per_block = [3 * width * width, width * width, hidden * width, hidden * width, width * hidden]
    matrices = 2 * sum(round(n * density) for n in per_block)
    norms = (2 * 2 + 1) * width  # two RMSNorm gains per block and the final one
    embedding = 2 * VOCAB * width  # token embedding and (untied) readout, dense
    assert budget.nonzero_non_embedding == matrices + norms
    assert budget.nonzero == matrices + norms + embedding
    assert budget.per_row == width * density
    assert budget.tokens == 300 * 16 * 64
    assert budget.tokens_per_nonzero_non_embedding == budget.tokens / (matrices + norms)


def test_line_names_row_and_token_counts():
    line = sparse_lines(llama(steps=300, parameterization="sp"))[0]
    assert line.startswith("non-zero weights per row d·ρ = 4 (width 64 × density 1/16); 307,200")
    assert "per non-zero non-embedding parameter" in line


def test_warns_inside_the_measured_losses_only():
    at_loss = llama()  # results/llama_bpe_density's cell: width 64, 1/16, 100 steps
    warning = supar_warning(at_loss, sparse_budget(at_loss))
    assert warning is not None and "results/llama_bpe_density" in warning
    assert warning.startswith("warning: SμPar lost to SP at d·ρ = 4, ")
    for quiet in (
        llama(parameterization="sp"),  # the warning is about SμPar's rules
        llama(density=1.0),  # dense: no sparse rule applies
        llama(width=1024, density=1 / 8),  # d·ρ = 128, wider per row than any loss
        llama(steps=30_000),  # longer than any loss measured
    ):
        assert supar_warning(quiet, sparse_budget(quiet)) is None
    # SμPar with depth rules is still SμPar
    deep = dataclasses.replace(at_loss, parameterization="supar+completep")
    assert supar_warning(deep, sparse_budget(deep)) is not None


def test_each_loss_is_inside_its_own_region():
    for loss in LOSSES:
        run = dataclasses.replace(loss.run, parameterization="supar")
        assert loss.study in supar_warning(run, sparse_budget(run))


def test_plan_prints_the_lines(capsys):
    args = ["plan", "-p", "supar", "--width", "128", "--base-width", "128"]
    assert main([*args, "--to", "width=128,density=0.0625"]) == 0
    out = capsys.readouterr().out
    assert "non-zero weights per row d·ρ = 8 (width 128 × density 1/16)" in out
    assert "warning: SμPar lost to SP" in out and "results/lr_vs_density_v2" in out
    assert main([*args, "--to", "width=128,density=0.0625,steps=20000,batch=16"]) == 0
    assert "warning" not in capsys.readouterr().out

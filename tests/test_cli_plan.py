"""``hptransfer plan``: values equal docs/parameterizations.md's table; bad input is a one-line
error."""

import json
import math
import subprocess
import sys

import pytest

from hptransfer.cli.main import main

SIGMA, ETA = 0.02, 2**-7


def plan_json(capsys, *args):
    assert main(["plan", "--json", *args]) == 0
    return {row["name"]: row for row in json.loads(capsys.readouterr().out)}


@pytest.mark.parametrize(("width", "density"), [(128, 1.0), (512, 1.0), (512, 0.125), (4096, 0.25)])
@pytest.mark.parametrize("p", ["sp", "mup", "supar"])
def test_gpt_plan_matches_spec(capsys, p, width, density):
    rows = plan_json(capsys, "-p", p, "--width", "128", "--to", f"width={width},density={density}")
    m_d, m_rho = width / 128, density
    fan = {"sp": 1, "mup": m_d, "supar": m_d * m_rho}[p]
    qkv = rows["blocks.0.attn.qkv.weight"]
    assert set(qkv) == {"name", "role", "shape", "density", "init", "lr", "multiplier"}
    assert qkv["role"] == "hidden" and qkv["shape"] == [3 * width, width]
    assert qkv["density"] == density
    assert qkv["init"] == pytest.approx(SIGMA / math.sqrt(fan))
    assert qkv["lr"] == pytest.approx(ETA / fan)
    residual = rows["blocks.1.ffn.down.weight"]
    assert residual["init"] == pytest.approx(SIGMA / math.sqrt(fan) / 2)  # 1/√(2·depth)
    head = rows["head.weight"]
    assert head["lr"] == pytest.approx(ETA) and head["init"] == pytest.approx(SIGMA)
    assert head["multiplier"] == pytest.approx(1 if p == "sp" else 1 / m_d)
    emb = rows["tok_emb.weight"]
    assert (emb["lr"], emb["init"], emb["multiplier"]) == pytest.approx((ETA, SIGMA, 1))


@pytest.mark.parametrize(("width", "density"), [(64, 0.5), (256, 0.0625)])
def test_mlp_plan_matches_spec(capsys, width, density):
    rows = plan_json(
        capsys, "--kind", "mlp", "--width", "64", "--to", f"width={width},density={density}"
    )
    fan = width / 64 * density
    assert rows["hidden.0.weight"]["lr"] == pytest.approx(ETA / fan)
    assert rows["hidden.0.weight"]["init"] == pytest.approx(SIGMA / math.sqrt(fan))
    assert rows["input.weight"]["lr"] == pytest.approx(ETA)
    assert rows["readout.weight"]["multiplier"] == pytest.approx(64 / width)


def test_plan_table_is_printed(capsys):
    assert main(["plan", "--to", "width=4096,density=1/8"]) == 0
    out = capsys.readouterr().out
    assert "m_d = 32" in out and "m_rho = 0.125" in out and "blocks.0.ffn.up.weight" in out


@pytest.mark.parametrize(("p", "rule"), [("sp", 1 / 8), ("supar", 4 / 64)])
def test_plan_shows_the_attention_logit_scale_with_alpha_attn(capsys, p, rule):
    """Base width 64 with 4 heads (d₀ 16) → width 256 (d_head 64): α_attn × the rule."""
    args = ["plan", "-p", p, "--width", "64", "--to", "width=256"]
    assert main([*args, "--alpha-attn", "2"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("forward:"))
    assert f"attention logits × {2 * rule:.4g} (α_attn 2)" in line


def test_plan_shows_kappa_on_the_embedding_and_readout_lrs_only(capsys):
    args = ["plan", "-p", "supar", "--width", "64", "--lr", "0.01", "--to", "density=1/16"]
    assert main([*args, "--json"]) == 0
    plain = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert main([*args, "--lr-emb-ratio", "4", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    for name, row in rows.items():
        kappa = 4 if row["role"] in ("embedding", "readout") else 1
        assert row["lr"] == pytest.approx(kappa * plain[name]["lr"])
    hidden = next(row for row in rows.values() if row["role"] == "hidden")
    assert hidden["lr"] == pytest.approx(0.16)  # η / (m_d·m_rho)
    assert {r["role"] for r in rows.values()} >= {"embedding", "readout", "vector", "hidden"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "--to", "widht=64"], "unknown --to key 'widht'"),
        (["plan", "--to", "width"], "expected key=value"),
        (["plan", "--to", "density=0"], "density must be in (0, 1]"),
        (["plan", "--to", "density=1.5"], "density must be in (0, 1]"),
        (["plan", "--to", "width=100,heads=3"], "divisible by model.heads"),
        (["plan", "-p", "supr"], "unknown parameterization 'supr' (did you mean 'supar'?)"),
        (["plan", "--to", "width=abc"], "bad --to value"),
        (["plan", "--alpha-attn", "0"], "hps.alpha_attn must be > 0; got 0"),
        (["plan", "--lr-emb-ratio", "-1"], "hps.lr_emb_ratio must be > 0; got -1"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, args, message):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_console_script_exit_code():
    proc = subprocess.run(
        [sys.executable, "-m", "hptransfer.cli.main", "plan", "--to", "density=2"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr

"""A spec's ``model: {kind: python, build: ...}``: the user's builder in hptransfer's own
training, plan and coordinate check; the run key follows the builder's source."""

import dataclasses
import sys

import pytest

from hptransfer.cli.main import main
from hptransfer.config import TrainConfig
from hptransfer.coord_check import check_run
from hptransfer.errors import ConfigError
from hptransfer.runtime.identity import run_key
from hptransfer.train import train
from tests.own.models import BUILD, python_run


@pytest.mark.parametrize("build", [BUILD, "examples.hf_llama_model:build"], ids=["own", "hf-llama"])
def test_trains_and_is_bit_identical_at_the_base_shape(build):
    curves = [train(python_run(p, build=build)).curve for p in ("sp", "mup", "supar")]
    assert curves[0] == curves[1] == curves[2]
    assert train(python_run(width=64, density=0.5, build=build)).curve != curves[0]


def test_coordinate_check_groups_by_the_blocks_found():
    rows = check_run(dataclasses.replace(python_run(width=64), train=TrainConfig(steps=1)))
    groups = {row["group"] for row in rows}
    assert {"blocks", "attn.qkv", "down", "logits"} <= groups


def test_plan_of_a_spec_with_a_python_model(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: own\nmodel: {kind: python, build: tests.own.models:build, width: 32, depth: 2,"
        " heads: 2, context: 16}\ndata: {corpus: synthetic, seq_len: 16}\n"
        "search: {space: {lr: {values: [0.01]}}}\n"
    )
    assert main(["plan", str(spec), "--to", "width=128,density=0.25"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("supar: python (tests.own.models:build) width 128, density 0.25")
    assert out[1].startswith("forward: embedding × 1, readout × 0.25, attention logits")
    up = next(line.split() for line in out if line.startswith("blocks.0.up.weight"))
    assert up[1:4] == ["hidden", "512×128", "0.25"]


def test_run_key_follows_the_builders_source(tmp_path, monkeypatch):
    module = tmp_path / "my_model.py"
    module.write_text("from tests.own.models import build\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    run = python_run(build="my_model:build")
    before = run_key.__wrapped__(run)
    assert before == run_key.__wrapped__(run)
    module.write_text("from tests.own.models import build  # edited\n")
    assert run_key.__wrapped__(run) != before
    sys.modules.pop("my_model", None)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        ("no_such_module:build", "module 'no_such_module' does not import"),
        ("tests.own.models:nothing", "has no function 'nothing'"),
        ("tests.own.models:TinyLM", "raised TypeError at width 32"),
        ("tests.own.models:not_a_module", "returned a str, not a module"),
        ("not a path", "must be 'package.module:function'"),
    ],
)
def test_bad_builders_are_one_line_errors(build, message):
    with pytest.raises(ConfigError, match=message):
        train(python_run(build=build))


def test_coord_check_cli_on_a_builder(tmp_path, capsys):
    common = "--widths 32,64 --densities 1,1/4 --steps 1 --seeds 0 -p supar --heads 2"
    args = [*common.split(), "--seq-len", "16", "--corpus", "synthetic"]
    out = tmp_path / "cc"
    assert main(["coord-check", "--build", BUILD, *args, "--out", str(out)]) == 0
    assert (out / "coord_check.parquet").is_file()
    bad = tmp_path / "bad"
    assert main(["coord-check", "--build", "nowhere:build", *args, "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "model.build 'nowhere:build': module 'nowhere' does not import" in err
    assert not bad.exists()


def test_bad_builder_in_the_cli_exits_2(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: own\nmodel: {kind: python, build: nowhere:build, width: 32, context: 16}\n"
        "data: {corpus: synthetic, seq_len: 16}\nsearch: {space: {lr: {values: [0.01]}}}\n"
    )
    assert main(["plan", str(spec)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "module 'nowhere' does not import" in err[0]


GOOD_MODEL = "{kind: python, build: tests.own.models:build, width: 32, context: 16}"


@pytest.mark.parametrize(
    ("model", "train", "message"),
    [
        (GOOD_MODEL.replace(":build", ":TinyLM"), "{steps: 2}", "raised TypeError at width 32"),
        (GOOD_MODEL, "{steps: 2, kind: python, fn: nowhere:train}", "module 'nowhere' does not"),
    ],
    ids=["builder-raises", "bad-fn-path"],
)
def test_a_sweep_with_a_bad_builder_or_fn_exits_2_writing_nothing(
    tmp_path, capsys, model, train, message
):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"name: own\nmodel: {model}\ntrain: {train}\ndata: {{corpus: synthetic, seq_len: 16}}\n"
        "search: {space: {lr: {values: [0.01]}}}\n"
    )
    assert main(["sweep", str(spec), "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "results").exists()

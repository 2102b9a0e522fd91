"""`hptransfer fit` and `hptransfer plot` on synthetic results folders; bad input → exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic_sweeps import make_curves, make_trials, write_sweep

from hptransfer.cli import main as cli


@pytest.fixture(autouse=True)
def only_analysis_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the real parser with just these subcommands (others may need torch or Ray)."""
    monkeypatch.setattr(cli, "SUBCOMMANDS", ("hptransfer.cli.fit", "hptransfer.cli.plot"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_fit_defaults_to_the_latest_sweep_and_prints_optima_and_drift(
    sweep_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "fit", "--n-boot", "200")
    assert code == 0
    assert "SμPar" not in out and "supar" in out and "drift of the optimum" in out
    assert f"wrote {Path('results/demo/fit.json')}" in out
    doc = json.loads((sweep_dir / "fit.json").read_text())
    assert doc["sweep"] == "demo" and doc["settings"]["n_boot"] == 200


def test_plot_writes_png_and_svg_including_transfer_curves(tmp_path: Path, capsys) -> None:
    sweep = write_sweep(tmp_path / "small", make_trials(widths=(64,)), base={"width": 64})
    runs = make_trials(widths=(256,), densities=(0.25,), seeds=(0,))
    runs = runs[runs["lr"] == runs["lr"].iloc[6]]  # one run per parameterization
    runs.to_parquet(sweep / "transfer.parquet")
    make_curves(runs).to_parquet(sweep / "transfer_curves.parquet")
    code, out, _ = run(capsys, "plot", str(sweep))
    assert code == 0 and out.startswith("note: fit.json is missing")
    written = {Path(line).name for line in out.splitlines()[1:]}
    for stem in ("hp_stability_lr_width64", "optimum_lr_vs_density", "curves_width64",
                 "transfer_curves"):  # fmt: skip
        assert {f"{stem}.png", f"{stem}.svg"} <= written
    assert (sweep / "plots" / "transfer_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in (sweep / "plots" / "transfer_curves.svg").read_text()


def test_replotting_rewrites_the_same_bytes_and_leaves_no_temp_files(tmp_path, capsys) -> None:
    """Figures in git change only when their content does (no date, no random SVG ids)."""
    sweep = write_sweep(tmp_path / "small", make_trials(widths=(64,)), base={"width": 64})
    assert run(capsys, "plot", str(sweep))[0] == 0
    first = {p.name: p.read_bytes() for p in (sweep / "plots").iterdir()}
    assert run(capsys, "plot", str(sweep))[0] == 0
    again = {p.name: p.read_bytes() for p in (sweep / "plots").iterdir()}
    assert again == first and {name.rsplit(".", 1)[1] for name in first} == {"png", "svg"}


def corrupt(path: Path) -> Path:
    path.write_bytes(b"not parquet")
    return path.parent


def all_diverged(path: Path) -> Path:
    write_sweep(path, make_trials(widths=(64,)).assign(diverged=True), curves=False)
    return path


def missing_column(path: Path) -> Path:
    write_sweep(path, make_trials(widths=(64,)).drop(columns=["status"]), curves=False)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "absent", "trials.parquet not found"),
        (lambda p: corrupt(p / "trials.parquet"), "trials.parquet is corrupt or unreadable"),
        (all_diverged, "diverged or did not complete"),
        (missing_column, "trials.parquet lacks column(s) status"),
    ],
)
@pytest.mark.parametrize("command", ["fit", "plot"])
def test_bad_results_are_one_line_exit_2(tmp_path: Path, capsys, command, make, message) -> None:
    code, out, err = run(capsys, command, str(make(tmp_path)))
    assert code == 2 and out == ""
    assert err.startswith("hptransfer: error: ") and err.count("\n") == 1
    assert message in err


def test_a_one_cell_sweep_prints_no_drift_and_the_note_counts_seeds(tmp_path: Path, capsys) -> None:
    one_cell = make_trials(parameterizations=("supar",), widths=(64,), densities=(1.0,))
    code, out, _ = run(capsys, "fit", str(write_sweep(tmp_path / "one", one_cell)))
    assert code == 0 and "supar" in out and "drift of the optimum" not in out
    few = make_trials(widths=(64,), densities=(1.0,), seeds=(0, 1))
    _, out, _ = run(capsys, "fit", str(write_sweep(tmp_path / "few", few)), "--n-boot", "50")
    note = next(line for line in out.splitlines() if "fewer than 3 seeds" in line)
    assert "2 on 2 seeds (3 distinct resamples): " in note  # each optimum named, its seeds said
    assert "sp lr at 64 × 1" in note and "supar lr at 64 × 1" in note
    assert "drift of the optimum" not in out  # two parameterizations, one shape: no drift


def test_no_results_yet_and_bad_flags_are_one_line_exit_2(tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "fit", "--results", str(tmp_path))
    assert code == 2 and "no sweep results" in err and err.count("\n") == 1
    code, _, err = run(capsys, "fit", str(tmp_path), "--metric", "accuracy")
    assert code == 2 and "invalid choice" in err and err.count("\n") == 1


def test_fit_prints_the_auto_extend_command_for_edge_optima_and_warns_of_few_seeds(
    tmp_path: Path, capsys
) -> None:
    trials = make_trials(lambda *_: -2.0, widths=(64,), seeds=(0, 1), diverge_octaves=9)
    sweep = write_sweep(tmp_path / "edgy", trials, base={"width": 64})
    code, out, _ = run(capsys, "fit", str(sweep), "--n-boot", "50")
    assert code == 0
    assert f"hptransfer sweep {sweep / 'spec.yaml'} --auto-extend" in out
    assert "fewer than 3 seeds" in out
    code, out, _ = run(capsys, "fit", str(write_sweep(tmp_path / "fine", make_trials())))
    assert "note:" not in out

"""Study write-ups' tables regenerated from fit.json (``python -m hptransfer.cli.report``)."""

from __future__ import annotations

from pathlib import Path

from synthetic_sweeps import make_trials, write_sweep

from hptransfer.analysis.fit import FitSettings, fit_sweep, write_fit
from hptransfer.analysis.report import regenerate

README = """# results

Intro stays.

<!-- fit demo rows=density width=64 -->
stale table
<!-- /fit -->

Text after stays.
"""


def test_blocks_are_rewritten_from_the_fit_and_the_rest_is_kept(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path / "demo", make_trials(), base={"width": 64})
    write_fit(fit_sweep(sweep, FitSettings(n_boot=100)), sweep)
    readme = tmp_path / "README.md"
    readme.write_text(README)
    assert regenerate(readme) == 1
    text = readme.read_text()
    assert "stale table" not in text and "Intro stays." in text and "Text after stays." in text
    lines = text.split("<!-- fit demo rows=density width=64 -->\n")[1].splitlines()
    assert lines[0] == "| density | SP | SμPar |"
    assert lines[2].startswith("| 1 | 2^-7.") and lines[3].startswith("| 1/4 | 2^-")
    # SP's known optimum moves one octave from density 1 to 1/4, SμPar's stays.
    assert "fitted / grid arg-min, octaves: SP 1." in text and "SμPar 0." in text
    regenerate(readme)
    assert readme.read_text() == text  # idempotent


def test_a_study_readme_names_its_own_folder_and_others_relative_to_itself(tmp_path: Path) -> None:
    """results/<study>/README.md: ``.`` is the study's own fit, ``../other`` another study's."""
    sweep = write_sweep(tmp_path / "demo", make_trials(), base={"width": 64})
    write_fit(fit_sweep(sweep, FitSettings(n_boot=100)), sweep)
    own, other = sweep / "README.md", tmp_path / "other" / "README.md"
    other.parent.mkdir()
    own.write_text(README.replace("fit demo", "fit ."))
    other.write_text(README.replace("fit demo", "fit ../demo"))
    assert regenerate(own) == regenerate(other) == 1
    tables = [p.read_text().split(" -->\n", 1)[1].split("<!-- /fit -->")[0] for p in (own, other)]
    assert tables[0] == tables[1] and tables[0].startswith("| density | SP | SμPar |")

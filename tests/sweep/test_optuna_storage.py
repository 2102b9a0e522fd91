"""An Optuna search keeps its studies in a real Optuna storage: a journal file in the sweep's
folder by default, or a database (``search.storage``, tested on a PostgreSQL server started
here). A resumed sweep continues the same study; a study of another search space, or a
storage that cannot be reached, is a one-line error that changes nothing."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pyarrow as pa
import pytest
import yaml
from conftest import tiny_spec

from hptransfer.cli.main import main
from hptransfer.errors import BackendUnavailableError, ConfigError
from hptransfer.runtime.cluster import configure_env
from hptransfer.store import TRIALS, ResultsStore, write_table
from hptransfer.sweep import parse_spec
from hptransfer.sweep.search import optuna_searcher, plan_cell, study_storage

OPTUNA = tiny_spec(
    name="study",
    search={
        "algorithm": "optuna",
        "num_samples": 3,
        "space": {"lr": {"low": 2**-9, "high": 2**-5, "log": True}},
    },
    seeds=[0],
    resources={"max_concurrent": 1},
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _study(directory: Path) -> optuna.Study:
    backend = optuna.storages.journal.JournalFileBackend(str(directory / "optuna.journal"))
    storage = optuna.storages.journal.JournalStorage(backend)
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def _drop_last_point(store: ResultsStore) -> None:
    """As if the driver was killed after the study was told a point but before it was stored."""
    trials = store.read_trials().sort_values("point_id")
    kept = trials[trials["point_id"] != trials["point_id"].iloc[-1]]
    write_table(store.trials_path, pa.Table.from_pandas(kept, schema=TRIALS, preserve_index=False))


def test_a_resumed_search_continues_the_same_study(tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(OPTUNA))
    args = ["sweep", str(path), "--results", str(tmp_path / "results")]
    assert main(args) == 0, capsys.readouterr().err
    folder = tmp_path / "results" / "study"
    study = _study(folder)
    stored = ResultsStore(folder).read_trials()
    assert len(study.trials) == 3 and sorted(t.params["lr"] for t in study.trials) == sorted(
        stored["lr"]
    )
    assert "lr" in study.user_attrs["search_space"]
    _drop_last_point(ResultsStore(folder))
    assert main(args) == 0, capsys.readouterr().err
    study = _study(folder)
    assert len(study.trials) == 4  # the same study, one trial more: not a new study
    assert len(ResultsStore(folder).read_trials()) == 3
    assert main(args) == 0 and len(_study(folder).trials) == 4  # finished: nothing added


def _other_space(spec: dict) -> dict:
    search = {**spec["search"], "space": {"lr": {"low": 2**-8, "high": 2**-4, "log": True}}}
    return {**spec, "search": search}


def _searcher(spec_doc: dict, storage) -> object:
    configure_env()  # before Ray is imported, as a sweep does
    spec = parse_spec(spec_doc)
    plan = plan_cell(spec, spec.cells[0], ResultsStore(Path("/nonexistent")).read_trials())
    return optuna_searcher(spec, plan, storage, verbose=False)


def test_a_study_of_another_search_space_is_refused(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    spec = {**OPTUNA, "search": {**OPTUNA["search"], "storage": url}}
    _searcher(spec, study_storage(parse_spec(spec), tmp_path))  # another folder made the study
    before = (tmp_path / "shared.db").read_bytes()
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(_other_space(spec)))
    code = main(["sweep", str(path), "--results", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "searches another space" in err, err
    assert (tmp_path / "shared.db").read_bytes() == before
    assert not ResultsStore(tmp_path / "results" / "study").exists()


@pytest.mark.parametrize(
    "url, words",
    [
        ("postgresql://hpt:secret@127.0.0.1:{port}/hpt", "cannot use search.storage"),
        ("mysql+nosuchdriver://u@127.0.0.1/db", "cannot use search.storage"),
        ("sqlite:////nonexistent/folder/x.db", "cannot use search.storage"),
    ],
)
def test_a_storage_that_cannot_be_used_is_one_line_before_ray(tmp_path, capsys, url, words):
    pytest.importorskip("psycopg2", reason="psycopg2-binary (test extra) is not installed")
    url = url.format(port=_free_port())  # nothing listens there: the connection is refused
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**OPTUNA, "search": {**OPTUNA["search"], "storage": url}}))
    code = main(["sweep", str(path), "--results", str(tmp_path / "results")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and words in err, err
    assert "secret" not in err
    assert not ResultsStore(tmp_path / "results" / "study").exists()


def test_storage_must_be_a_url() -> None:
    with pytest.raises(ConfigError, match=r"search\.storage"):
        parse_spec({**OPTUNA, "search": {**OPTUNA["search"], "storage": "results/x.db"}})
    stored = parse_spec({**OPTUNA, "search": {**OPTUNA["search"], "storage": "sqlite:///x.db"}})
    assert stored.hash == parse_spec(OPTUNA).hash  # where the study lives is not what it is


# -- a real PostgreSQL server -------------------------------------------------------------


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 in a temporary data folder; its URL."""
    pytest.importorskip("psycopg2", reason="psycopg2-binary (test extra) is not installed")
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    as_user: list[str] = []
    data = Path(tempfile.mkdtemp(prefix="hpt-pg-", dir="/tmp"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root and no runuser to start PostgreSQL as another user")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(data, "postgres")
    port = _free_port()
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
    try:
        subprocess.run(
            [*as_user, bindir / "initdb", "-D", data / "db", "-A", "trust", "-U", "hpt"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        log = ["-l", data / "log"]  # the server logs to a file, not to the pipes waited on
        subprocess.run(
            [*as_user, bindir / "pg_ctl", "-D", data / "db", *log, "-o", options, "-w", "start"],
            check=True,
            capture_output=True,
            timeout=120,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        shutil.rmtree(data, ignore_errors=True)
        pytest.skip(f"PostgreSQL could not start here: {exc}")
    try:
        yield f"postgresql://hpt@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(
                [*as_user, bindir / "pg_ctl", "-D", data / "db", "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(data, ignore_errors=True)


def test_postgresql_storage_holds_the_study_and_checks_its_space(postgres, tmp_path):
    spec_doc = {**OPTUNA, "search": {**OPTUNA["search"], "storage": postgres}}
    spec = parse_spec(spec_doc)
    searcher = _searcher(spec_doc, study_storage(spec, tmp_path))
    suggestion = searcher.suggest("t1")
    searcher.on_trial_complete("t1", {"objective": 2.5, **suggestion})
    # a second driver (a resumed sweep) loads the same study from the server
    study = optuna.load_study(
        study_name=searcher._ot_study.study_name, storage=study_storage(spec, tmp_path)
    )
    assert [t.value for t in study.trials] == [2.5] and study.user_attrs["search_space"]
    resumed = _searcher(spec_doc, study_storage(spec, tmp_path))
    assert len(resumed._ot_study.trials) == 1
    with pytest.raises(ConfigError, match="another space"):
        _searcher(_other_space(spec_doc), study_storage(spec, tmp_path))
    assert not list(tmp_path.iterdir())  # nothing in the sweep folder: the study is remote


def test_unreachable_postgresql_is_a_backend_error(tmp_path):
    pytest.importorskip("psycopg2", reason="psycopg2-binary (test extra) is not installed")
    url = f"postgresql://hpt@127.0.0.1:{_free_port()}/postgres"
    spec = parse_spec({**OPTUNA, "search": {**OPTUNA["search"], "storage": url}})
    with pytest.raises(BackendUnavailableError, match=r"refused|connect"):
        study_storage(spec, tmp_path)

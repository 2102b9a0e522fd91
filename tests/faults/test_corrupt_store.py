"""A damaged results table is reported, never misread and never overwritten: bytes flipped,
files cut, a disk that fills up mid-sweep. And the results folder's lock says who holds it."""

from __future__ import annotations

import errno
import itertools
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import faultkit
import pyarrow.parquet as pq
import pytest

from hptransfer.analysis import results
from hptransfer.cli.main import main
from hptransfer.errors import ResultsError
from hptransfer.runtime.identity import point_id, trial_row
from hptransfer.store import ResultsStore
from hptransfer.sweep import parse_spec
from hptransfer.sweep.trials import grid_runs


def stored(directory: Path, runs: int = 6) -> ResultsStore:
    """A store holding ``runs`` rows with distinct losses (no training)."""
    spec = parse_spec(faultkit.SPEC)
    store = ResultsStore(directory)
    rows = []
    for index, run in enumerate(grid_runs(spec)[:runs]):
        outcome = {"status": "completed", "val_loss": 3.0 + index / 7, "train_loss": 3.1,
                   "steps": 100, "tokens": 3200, "wall_s": 1.0, "kernel": "dense"}  # fmt: skip
        rows.append(trial_row(point_id(run), run, spec.name, spec.hash, outcome))
    with store.lock():
        store.append(rows, [])
    return store


def column_chunk_end(path: Path, column: str) -> int:
    """Offset of the last byte of ``column``'s data in a Parquet file (inside a data page)."""
    meta = pq.ParquetFile(path).metadata.row_group(0)
    names = [meta.column(i).path_in_schema for i in range(meta.num_columns)]
    chunk = meta.column(names.index(column))
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    return start + chunk.total_compressed_size - 1


def test_every_flipped_byte_is_an_error_or_harmless(tmp_path):
    """Page checksums: a flipped byte anywhere either fails the read, naming the file, or
    changes nothing the reader sees; it never yields a different loss."""
    store = stored(tmp_path)
    original = store.read_trials()
    data = store.trials_path.read_bytes()
    loss_end = column_chunk_end(store.trials_path, "val_loss")
    positions = sorted(
        {*random.Random(0).sample(range(len(data)), 800), *range(loss_end - 40, loss_end + 1)}
    )
    errors = 0
    for position in positions:
        damaged = bytearray(data)
        damaged[position] ^= 0xFF
        store.trials_path.write_bytes(bytes(damaged))
        try:
            read = store.read_trials()
        except ResultsError as exc:
            assert str(store.trials_path) in str(exc) and "\n" not in str(exc)
            errors += 1
        else:
            assert read.equals(original), f"byte {position} flipped changed the data silently"
    assert errors > len(positions) // 2


@pytest.mark.parametrize("keep", [0, 4, 0.5, -8, -1])
def test_a_cut_file_is_an_error(tmp_path, keep):
    store = stored(tmp_path)
    data = store.trials_path.read_bytes()
    store.trials_path.write_bytes(
        data[: int(len(data) * keep) if isinstance(keep, float) else keep]
    )
    with pytest.raises(ResultsError, match="corrupt or unreadable"):
        store.read_trials()


def test_reading_while_a_sweep_replaces_the_table_never_fails(tmp_path):
    """``hptransfer fit`` on a running sweep: every read sees one whole file, old or new
    (read by path, pyarrow opened the file twice and could mix two versions)."""
    store = stored(tmp_path, runs=1)
    rows = store.read_trials().to_dict("records")
    done = threading.Event()

    def write_continuously() -> None:
        for index in itertools.count():
            if done.is_set():
                return
            store.append([{**rows[0], "trial_id": f"p{index}-s0"}], [])

    writer = threading.Thread(target=write_continuously)
    writer.start()
    reads = 0
    try:
        # at least 3 s and 11 reads (a read of the table and its parts is slower on a busy box)
        start = time.monotonic()
        while time.monotonic() < start + 3 or (reads <= 10 and time.monotonic() < start + 60):
            assert len(ResultsStore(tmp_path).read_trials()) >= 1
            assert len(results.read_trials(tmp_path)) >= 1
            reads += 1
    finally:
        done.set()
        writer.join()
    assert reads > 10


def flip_loss(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[column_chunk_end(path, "val_loss")] ^= 0x01
    path.write_bytes(bytes(data))


def cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def zero_tail(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-64] + bytes(64))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "flipped": flip_loss,
    "cut": cut_in_half,
    "zeroed-footer": zero_tail,
    "emptied": lambda path: path.write_bytes(b""),
}


@pytest.mark.parametrize("table", ["trials.parquet", "curves.parquet"])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_sweep_refuses_a_damaged_table_and_leaves_everything_unchanged(
    tmp_path, capsys, table, damage
):
    """``hptransfer sweep`` on a finished sweep whose table was damaged: one line naming the
    file and the way out, exit 2, before Ray starts, every file byte for byte as it was."""
    sweep_dir = faultkit.write_fitted_sweep(tmp_path / "results")
    spec = faultkit.write_yaml(tmp_path / "tiny.yaml", faultkit.FITTED_SPEC)
    command = ["sweep", str(spec), "--results", str(tmp_path / "results")]
    assert main(command) == 0  # intact: nothing to train
    capsys.readouterr()
    DAMAGE[damage](sweep_dir / table)
    before = faultkit.tree_digest(tmp_path)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{sweep_dir / table} is corrupt or unreadable" in err
    assert "left unchanged" in err and f"mv {sweep_dir / table}" in err
    assert faultkit.tree_digest(tmp_path) == before


def test_fit_and_transfer_refuse_a_flipped_loss(tmp_path, capsys):
    sweep_dir = faultkit.write_fitted_sweep(tmp_path / "results")
    flip_loss(sweep_dir / "trials.parquet")
    (sweep_dir / "transfer.parquet").write_bytes(b"PAR1 not really")
    before = faultkit.tree_digest(tmp_path)
    assert main(["fit", str(sweep_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trials.parquet is corrupt or unreadable" in err
    assert main(["transfer", "--from", str(sweep_dir), "--to", "width=32"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "transfer.parquet is corrupt or unreadable" in err
    assert faultkit.tree_digest(tmp_path) == before


@pytest.mark.slow  # a sweep on Ray
def test_a_full_disk_mid_sweep_ends_it_with_one_line(root, monkeypatch, capsys):
    """The driver's store write fails inside Ray Tune (ENOSPC on the second finished run):
    the sweep stops with the store's one-line error, the first run stays stored."""
    real_append = ResultsStore.append
    writes = []

    def append(self, rows, curves):
        writes.append(len(rows))
        if len(writes) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_append(self, rows, curves)

    monkeypatch.setattr(ResultsStore, "append", append)
    spec = faultkit.tiny_spec(name="full", resources={"max_concurrent": 1})
    path = faultkit.write_yaml(root / "full.yaml", spec)
    assert main(["sweep", str(path), "--results", str(root / "results")]) == 2
    err = capsys.readouterr().err
    where = root / "results" / "full"
    assert err == f"hptransfer: error: cannot write results in {where}: No space left on device\n"
    assert len(ResultsStore(root / "results" / "full").read_trials()) == 1
    assert not (root / "results" / "full" / "ray" / "tune").exists()  # no Tune pickles left


def test_lock_names_its_holder_and_is_cleared_on_release(tmp_path):
    store = ResultsStore(tmp_path / "sweep")
    with store.lock():
        holder = (store.directory / "sweep.lock").read_text()
        assert holder.startswith(f"pid {os.getpid()} on {socket.gethostname()} (since ")
        with pytest.raises(ResultsError) as refused, ResultsStore(store.directory).lock():
            pass
        assert f"is in use by pid {os.getpid()} on {socket.gethostname()}" in str(refused.value)
    assert (store.directory / "sweep.lock").read_text() == ""
    with ResultsStore(store.directory).lock():
        pass


def test_results_root_that_is_a_file(tmp_path, capsys):
    spec = faultkit.write_yaml(tmp_path / "s.yaml", faultkit.tiny_spec())
    (tmp_path / "results").write_text("not a folder")
    assert main(["sweep", str(spec), "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot create the results folder" in err

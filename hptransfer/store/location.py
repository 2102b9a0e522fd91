"""Where a results folder lives: this machine's disk (a :class:`pathlib.Path`), or object
storage named by a URI that :func:`pyarrow.fs.FileSystem.from_uri` resolves (``s3://bucket/
prefix``, ``gs://bucket/prefix``; S3 options as URI query, e.g.
``?endpoint_override=host:9000&scheme=http``).

An object-storage location is an :class:`ObjectPath`: the part of ``pathlib.Path``'s API that
the results code uses (``/``, ``name``, ``parent``, ``exists``, ``is_file``, ``glob``,
``read_text``, ``stat().st_mtime`` ...), so the code above the store reads and writes both
alike. Object stores have no rename: an object is published whole when its upload completes,
so :meth:`ObjectPath.write_bytes` uploads content serialised in memory in one request, and a
killed upload leaves nothing a reader sees. Every storage failure is a one-line
:class:`~hptransfer.errors.ResultsError`. Credentials come from the usual environment
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_PROFILE``,
``GOOGLE_APPLICATION_CREDENTIALS``...), as pyarrow finds them.
"""

from __future__ import annotations

import contextlib
import fnmatch
import posixpath
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from hptransfer.errors import ResultsError


class ObjectPath:
    """A file or folder in a pyarrow filesystem (object storage), path-like for the store."""

    def __init__(self, fs: pafs.FileSystem, path: str, scheme: str):
        self.fs = fs
        self.path = path.rstrip("/")
        self.scheme = scheme  # "s3", "gs": how the path is shown

    # -- names ------------------------------------------------------------------------
    def __truediv__(self, name: str | Path) -> ObjectPath:
        return ObjectPath(self.fs, posixpath.join(self.path, str(name)), self.scheme)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.path}"

    def __repr__(self) -> str:
        return f"ObjectPath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectPath) and str(other) == str(self)

    def __hash__(self) -> int:
        return hash(str(self))

    def __lt__(self, other: ObjectPath) -> bool:
        return str(self) < str(other)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def stem(self) -> str:
        return posixpath.splitext(self.name)[0]

    @property
    def suffix(self) -> str:
        return posixpath.splitext(self.name)[1]

    @property
    def parent(self) -> ObjectPath:
        return ObjectPath(self.fs, posixpath.dirname(self.path), self.scheme)

    def with_name(self, name: str) -> ObjectPath:
        return self.parent / name

    def resolve(self) -> ObjectPath:
        return self

    # -- queries ----------------------------------------------------------------------
    def _info(self) -> pafs.FileInfo:
        with _storage_errors(self):
            return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._info().type == pafs.FileType.Directory

    def stat(self) -> types.SimpleNamespace:
        info = self._info()
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(str(self))
        mtime = info.mtime.timestamp() if info.mtime is not None else 0.0
        return types.SimpleNamespace(st_mtime=mtime, st_size=info.size or 0)

    def glob(self, pattern: str) -> Iterator[ObjectPath]:
        """Entries matching ``pattern`` (``*``-style, ``/`` separated), as Path.glob."""
        depth = pattern.count("/") + 1
        selector = pafs.FileSelector(self.path, allow_not_found=True, recursive=depth > 1)
        with _storage_errors(self):
            infos = self.fs.get_file_info(selector)
        for info in infos:
            relative = info.path[len(self.path) + 1 :]
            if relative.count("/") + 1 == depth and fnmatch.fnmatchcase(relative, pattern):
                yield ObjectPath(self.fs, info.path, self.scheme)

    def iterdir(self) -> Iterator[ObjectPath]:
        return self.glob("*")

    # -- reads and writes --------------------------------------------------------------
    def read_bytes(self) -> bytes:
        """The whole object in one request (never pages of two versions of it)."""
        with _storage_errors(self), self.fs.open_input_stream(self.path) as handle:
            return handle.readall()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def open(self, mode: str = "rb") -> pa.NativeFile:
        """A stream of the object's bytes, for reading a large object in pieces."""
        if mode != "rb":
            raise ValueError(f"{self}: objects are opened for reading only ('rb'); got {mode!r}")
        with _storage_errors(self):
            return self.fs.open_input_stream(self.path)

    def open_input(self) -> pa.BufferReader:
        return pa.BufferReader(self.read_bytes())

    def write_bytes(self, data: bytes) -> None:
        """Publish ``data`` as this object: one upload, visible whole or not at all."""
        with _storage_errors(self), self.fs.open_output_stream(self.path) as handle:
            handle.write(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def unlink(self, missing_ok: bool = False) -> None:
        if missing_ok and not self.exists():
            return
        with _storage_errors(self):
            self.fs.delete_file(self.path)

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: object stores have no folders, only names with ``/`` in them."""

    def rmdir(self) -> None:
        """Nothing to do (see :meth:`mkdir`)."""

    def remove_tree(self) -> None:
        """Delete every object under this folder (none: nothing happens)."""
        if self.is_dir():
            with _storage_errors(self):
                self.fs.delete_dir(self.path)

    def rename(self, target: Any) -> None:
        raise ResultsError(
            f"{self}: object storage cannot move a folder; move or delete it with your "
            "storage's tools"
        )


Location = Path | ObjectPath


def location(where: str | Path | ObjectPath) -> Location:
    """A results folder or file: ``where`` as a URI of object storage (``scheme://...``)
    resolved by pyarrow, else a local path. A bad URI, unreachable storage, missing
    credentials or a missing bucket are one-line :class:`ResultsError` s."""
    if isinstance(where, Path | ObjectPath):
        return where
    scheme, sep, _ = where.partition("://")
    if not (sep and scheme):
        return Path(where)
    if scheme == "file":
        return Path(where.removeprefix("file://"))
    try:
        fs, path = pafs.FileSystem.from_uri(where)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        raise ResultsError(f"{where}: not a usable storage URI ({_detail(exc)})") from None
    except OSError as exc:
        raise ResultsError(f"{where}: storage unreachable ({_detail(exc)})") from None
    found = ObjectPath(fs, path, scheme)
    _check_bucket(found)
    return found


def is_local(where: Location) -> bool:
    return isinstance(where, Path)


def remove_tree(where: Location) -> None:
    """Delete a folder and everything in it, if it is there."""
    if isinstance(where, ObjectPath):
        where.remove_tree()
    else:
        import shutil

        shutil.rmtree(where, ignore_errors=True)


def move(where: Location, to: Location) -> None:
    """Move a folder: a rename on a disk; in object storage, which has no move, a copy of
    every object under it, then the originals deleted (a crash in between leaves both)."""
    if isinstance(where, ObjectPath):
        assert isinstance(to, ObjectPath) and to.fs is where.fs, "a move within one store"
        with _storage_errors(where):
            pafs.copy_files(where.path, to.path, where.fs, to.fs)
        where.remove_tree()
    else:
        where.rename(to)


def _check_bucket(where: ObjectPath) -> None:
    """Fail now, in one line, if the bucket is missing or cannot be reached or read."""
    bucket = ObjectPath(where.fs, where.path.split("/", 1)[0], where.scheme)
    if not bucket.is_dir():
        raise ResultsError(
            f"{where}: the bucket {bucket} does not exist (create it first, e.g. "
            f"`aws s3 mb {bucket}`)"
        )
    list(where.glob("*"))  # listing needs read access: credentials are checked here


@contextlib.contextmanager
def _storage_errors(where: ObjectPath) -> Iterator[None]:
    """pyarrow's storage errors as one line naming the object and the likely cause."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        detail = _detail(exc)
        if any(key in detail for key in ("ACCESS_DENIED", "AccessDenied", "InvalidAccessKey")):
            why = (
                "access denied: check the credentials (AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY or AWS_PROFILE; GOOGLE_APPLICATION_CREDENTIALS)"
            )
        elif "NETWORK_CONNECTION" in detail or "Could not resolve" in detail:
            why = "storage unreachable"
        else:
            why = "storage error"
        raise ResultsError(f"{where}: {why} ({detail})") from None


def _detail(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:240]

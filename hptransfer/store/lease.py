"""The writer lock of a results folder in object storage, which has no file locks.

The holder writes ``sweep.lock`` (JSON: host, pid, a random token, when it last renewed it)
and renews it every :data:`RENEW_S` seconds from a thread while it holds the folder. Another
process may take the folder when there is no lock object, when its holder ran on this host
and is gone (a killed sweep resumed here at once), or when it was not renewed for
:data:`STALE_S` seconds (a holder on another machine that died). After writing its own lock
the taker reads it back after a short pause and gives up if another process's lock
replaced it: two processes starting within that pause cannot both hold the folder, though
object storage without conditional writes cannot rule out every race; one sweep per folder
is still the rule.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from hptransfer.errors import ResultsError
from hptransfer.store.location import ObjectPath

RENEW_S = 10.0
STALE_S = 60.0
SETTLE_S = 0.5  # the pause before reading one's own lock back


@contextlib.contextmanager
def lease(path: ObjectPath) -> Iterator[None]:
    """Hold the lock object ``path`` (refused in one line while another process holds it)."""
    holder = _take(path)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(path, holder, stop), daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        if _read(path).get("token") == holder["token"]:
            path.unlink(missing_ok=True)


def _take(path: ObjectPath) -> dict[str, Any]:
    current = _read(path)
    if current and _alive(current):
        raise _in_use(path, current)
    holder = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "token": uuid.uuid4().hex,
        "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "renewed": time.time(),
    }
    _write(path, holder)
    time.sleep(SETTLE_S)
    current = _read(path)
    if current.get("token") != holder["token"]:
        raise _in_use(path, current)
    return holder


def _renew(path: ObjectPath, holder: dict[str, Any], stop: threading.Event) -> None:
    while not stop.wait(RENEW_S):
        with contextlib.suppress(ResultsError):  # a missed renewal: the next one may work
            _write(path, {**holder, "renewed": time.time()})


def _alive(holder: dict[str, Any]) -> bool:
    """Whether the process that wrote ``holder`` may still hold the folder."""
    if holder.get("host") == socket.gethostname():
        try:
            os.kill(int(holder.get("pid", -1)), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, ValueError, OverflowError):
            pass
        else:
            return True
    return time.time() - float(holder.get("renewed", 0)) < STALE_S


def _read(path: ObjectPath) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        found = json.loads(path.read_text())
    except (ValueError, FileNotFoundError):
        return {}
    return found if isinstance(found, dict) else {}


def _write(path: ObjectPath, holder: dict[str, Any]) -> None:
    path.write_text(json.dumps(holder))


def _in_use(path: ObjectPath, holder: dict[str, Any]) -> ResultsError:
    who = f"pid {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')})"
    return ResultsError(
        f"{path.parent} is in use by {who}; wait for it to finish or use another sweep name "
        f"(a holder that died releases it {STALE_S:.0f} s after its last renewal)"
    )

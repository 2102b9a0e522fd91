"""Where trials run: an embedded local Ray, or an existing cluster attached by address.

Ray reads its environment at import and start: :func:`configure_env` runs first, and Ray is
imported only inside these functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from hptransfer.errors import BackendUnavailableError, ConfigError
from hptransfer.runtime.resources import Resources
from hptransfer.store.folder import RAY_DIR
from hptransfer.store.location import Location, ObjectPath, remove_tree

if TYPE_CHECKING:
    from hptransfer.trackers import Tracker

# Ray's Unix socket paths (<temp>/session_<date>_<pid>/sockets/plasma_store) must stay
# under 107 bytes; the session part takes about 64 of them.
MAX_TEMP_DIR_CHARS = 40
CONNECT_TIMEOUT_S = 3.0
# Ray takes a node's address from its network interfaces, even when told 127.0.0.1, and its
# servers then listen on every interface. With this set to 0 (its meaning: "no multi-node
# cluster") the node address is 127.0.0.1 and they listen on loopback only.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
TUNE_NAME = "tune"  # Tune's experiment folder in ray_working_dir()


@dataclass(frozen=True)
class Execution:
    """Where and how trials run, and where they are followed (not part of what they compute):
    ``trackers`` log each trial and target (:mod:`hptransfer.trackers`)."""

    resources: Resources = dataclasses.field(default_factory=Resources)
    address: str | None = None
    verbose: bool = False
    out: TextIO = dataclasses.field(default_factory=lambda: sys.stdout)
    trackers: tuple[Tracker, ...] = ()


def configure_env() -> None:
    """Environment Ray reads at import/start: no auth token or telemetry, quiet output, an
    embedded Ray on loopback only (so it needs no token)."""
    os.environ.setdefault(LOOPBACK_ENV, "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # the store is our log
    # A sweep resumes from the store, never through Tuner.restore: Tune's periodic experiment
    # checkpoints (pickled searcher and trials, up to 5% of the wall time) buy nothing.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", str(10**9))
    # Ctrl-C stops the sweep at once (finished runs are already stored), instead of Tune's
    # graceful stop that ends with advice to resume through Tuner.restore.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")


@contextlib.contextmanager
def ray_session(directory: Location, execution: Execution) -> Iterator[int]:
    """Start an embedded Ray (or attach to ``execution.address``); yield concurrent slots."""
    configure_env()
    import ray

    with _own_sigterm_handler():
        temp_dir = _init_ray(directory, execution)
    # A failed trial's traceback goes to the store's error column, not to the terminal.
    tune_logger = logging.getLogger("ray.tune")
    tune_level = tune_logger.level
    tune_logger.setLevel(logging.INFO if execution.verbose else logging.CRITICAL)
    try:
        yield _slots(ray.cluster_resources(), execution.resources)
    finally:
        ray.shutdown()
        tune_logger.setLevel(tune_level)
        if temp_dir is not None and not execution.verbose:
            shutil.rmtree(temp_dir, ignore_errors=True)  # ~1 MB of logs per start


@contextlib.contextmanager
def _own_sigterm_handler() -> Iterator[None]:
    """Keep this process's SIGTERM handler across ``ray.init``: Ray's core installs a crash
    handler that turns `kill PID` into an abort with a stack dump."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, handler if handler is not None else signal.SIG_DFL)


def _init_ray(directory: Location, execution: Execution) -> Path | None:
    """``ray.init``, embedded (returns its temp dir) or attached (returns None)."""
    import ray

    common: dict[str, Any] = {
        "log_to_driver": execution.verbose,
        "logging_level": logging.INFO if execution.verbose else logging.ERROR,
    }
    address = _address(execution)
    if address:
        try:
            ray.init(address=address, runtime_env=_code_runtime_env(), **common)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ...
            detail = " ".join(str(exc).split())[:300]
            raise BackendUnavailableError(
                f"cannot attach to Ray at {address}: {detail} (a cluster with token "
                "authentication needs RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN, "
                "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)"
            ) from None
        return None
    _check_loopback(ray)
    temp_dir = ray_temp_dir(directory)
    ray.init(
        address="local",
        num_cpus=len(os.sched_getaffinity(0)),
        num_gpus=_local_gpus(execution.resources),
        include_dashboard=False,
        _temp_dir=str(temp_dir),
        _node_ip_address="127.0.0.1",
        **common,
    )
    return temp_dir


def _check_loopback(ray: Any) -> None:
    """Refuse to start an embedded Ray that would listen beyond loopback (Ray read
    LOOPBACK_ENV when first imported; an import before :func:`configure_env` misses it)."""
    node_ip = ray.util.get_node_ip_address()  # before ray.init: the address it would use
    if not node_ip.startswith("127.") and os.environ.get(LOOPBACK_ENV) != "1":
        raise BackendUnavailableError(
            f"the embedded Ray would listen on {node_ip}, not only on loopback: Ray was "
            f"imported before hptransfer set {LOOPBACK_ENV}=0; set it before Python starts "
            f"(or {LOOPBACK_ENV}=1 to accept)"
        )


def _address(execution: Execution) -> str | None:
    return execution.address or os.environ.get("RAY_ADDRESS") or None


def check_execution(execution: Execution) -> None:
    """Fail before touching any results: a bad address or resource request."""
    address = _address(execution)
    if address:
        check_address(address)
    resources = execution.resources
    if resources.max_concurrent is not None and resources.max_concurrent < 1:
        raise ConfigError("max_concurrent must be >= 1")
    cpus = len(os.sched_getaffinity(0))  # what the embedded Ray gets
    if not address and resources.cpus_per_trial > cpus:
        raise ConfigError(
            f"resources.cpus_per_trial is {resources.cpus_per_trial} but this machine has "
            f"{cpus} CPUs (a Ray cluster: --address)"
        )


def clear_killed_session(directory: Location, execution: Execution) -> None:
    """Remove what a killed sweep left of its Ray in ``directory`` (the caller holds the
    sweep's lock, so no live session uses it): Tune's state, and the embedded Ray's temp
    dir unless ``execution.verbose`` (whose runs keep their logs)."""
    remove_tree(ray_working_dir(directory) / TUNE_NAME)
    if not execution.verbose and not _address(execution):
        shutil.rmtree(ray_temp_dir(directory), ignore_errors=True)


def ray_working_dir(directory: Location) -> Location:
    """``<sweep>/ray``: Tune's run state (removed after each fit: results live in the store)
    and, where the path is short enough, the embedded Ray's temp dir; git-ignored. In
    object storage too (Tune writes there through pyarrow, see :func:`tune_storage`)."""
    return directory.resolve() / RAY_DIR


def tune_storage(directory: Location) -> dict[str, Any]:
    """``tune.RunConfig``'s storage arguments for Tune's state of the sweep in ``directory``:
    a local path, or a path in the results' object storage with its pyarrow filesystem."""
    storage = ray_working_dir(directory)
    if isinstance(storage, ObjectPath):
        return {"storage_path": storage.path, "storage_filesystem": storage.fs}
    return {"storage_path": str(storage)}


def ray_temp_dir(directory: Location) -> Path:
    """``<results>/<sweep>/ray/tmp`` if local and short enough for Ray's sockets, else a /tmp
    path (Ray's temp dir is on this machine's disk, whatever the results' storage)."""
    preferred = ray_working_dir(directory) / "tmp"
    if isinstance(preferred, Path) and len(str(preferred)) <= MAX_TEMP_DIR_CHARS:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"hpt-{digest}"


def check_address(address: str) -> None:
    """Fail in seconds, with one line, if nothing listens at a ``host:port`` address."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"bad Ray address {address!r}; expected host:port, e.g. 127.0.0.1:6379")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise BackendUnavailableError(
            f"cannot reach a Ray cluster at {address} ({exc.strerror or exc}); start one with "
            "`ray start --head`, or drop --address/RAY_ADDRESS to use an embedded Ray"
        ) from None


def _slots(cluster: dict[str, float], resources: Resources) -> int:
    # A trial that asks for more than the cluster has would wait for it forever.
    if resources.gpus_per_trial > cluster.get("GPU", 0):
        raise BackendUnavailableError(
            f"resources.gpus_per_trial is {resources.gpus_per_trial} but the Ray cluster has "
            f"{cluster.get('GPU', 0):g} GPUs"
        )
    if resources.cpus_per_trial > cluster.get("CPU", 0):
        raise BackendUnavailableError(
            f"resources.cpus_per_trial is {resources.cpus_per_trial} but the Ray cluster has "
            f"{cluster.get('CPU', 0):g} CPUs"
        )
    return max(1, int(cluster.get("CPU", 1) // resources.cpus_per_trial))


def _local_gpus(resources: Resources) -> int:
    if resources.gpus_per_trial <= 0:
        return 0
    import torch

    return torch.cuda.device_count()


def _code_runtime_env() -> dict[str, Any]:
    """Ship this hptransfer to the cluster's workers: same code as the driver, no shared FS."""
    import hptransfer

    return {"py_modules": [str(Path(hptransfer.__file__).parent)]}

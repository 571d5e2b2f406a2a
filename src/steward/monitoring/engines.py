"""Where a monitor window's partitions are read: in this process, or as Ray tasks.

An engine maps :func:`~steward.monitoring.window.read_partition` over a window's hour
partitions and returns the partials in partition order; ``read_window`` merges them on the
caller's side, so the engine changes where the reading runs, never the numbers.

``ray_engine`` submits one Ray task per partition. Ray is an optional extra
(``pip install 'ml-steward[ray]'``), imported only when the engine first runs, so
``import steward`` stays fast without it. The engine connects to the cluster named by Ray's
own ``RAY_ADDRESS`` when it is set, else starts a small local Ray, and stays connected across
calls (a scheduler calls it every interval); :func:`shutdown` disconnects.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from datetime import datetime
from typing import Any

from steward.errors import InvalidInput, Unavailable
from steward.monitoring.window import Engine, Partial, local_engine, read_partition

RAY_INSTALL_HINT = "pip install 'ml-steward[ray]'"
# CPUs of a local Ray started by the engine (a cluster named by RAY_ADDRESS brings its own).
LOCAL_RAY_CPUS = 2

_lock = threading.Lock()
_remote_read: Any = None  # read_partition as a Ray remote function, made at the first call


def ray_engine(root: str, parts: list[list[str]], start: datetime, end: datetime) -> list[Partial]:
    """Read each partition as one Ray task; the partials come back in partition order.

    The tasks run ``read_partition`` as is, so the workers need ``ml-steward`` installed and
    must see ``root`` at the same URL (a shared file system or object storage on a cluster).
    """
    if not parts:
        return []
    ray = _import_ray()
    read = _connected(ray)
    refs = [read.remote(root, files, start, end) for files in parts]
    try:
        partials: list[Partial] = ray.get(refs)
    except ray.exceptions.RayTaskError as exc:
        raise _task_error(exc) from exc
    except ray.exceptions.RayError as exc:  # a worker or node lost, an object lost, ...
        raise Unavailable(
            f"Ray failed while reading the window ({type(exc).__name__}): {exc}. Retry, or run "
            "with `--engine local`."
        ) from exc
    return list(partials)


def engine_named(name: str) -> Engine:
    """The engine ``steward monitor run --engine NAME`` asks for: ``local`` or ``ray``."""
    engines: dict[str, Engine] = {"local": local_engine, "ray": ray_engine}
    engine = engines.get(name)
    if engine is None:
        raise InvalidInput(
            f"Unknown monitoring engine {name!r}. Use one of: {', '.join(engines)}.",
            field="engine",
        )
    if engine is ray_engine and importlib.util.find_spec("ray") is None:
        _import_ray()  # raises the InvalidInput with the install hint, before anything runs
    return engine


def shutdown() -> None:
    """Disconnect from Ray (stopping the local Ray the engine started); a later call of
    ``ray_engine`` connects again. Does nothing when Ray was never imported or is not up."""
    global _remote_read
    with _lock:
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            ray.shutdown()
        _remote_read = None


def _task_error(exc: Any) -> BaseException:
    """A task's own error as the caller would get it from the local engine (a bad time, an
    unreadable file), the remote traceback kept as its cause."""
    cause = exc.cause
    if isinstance(cause, ImportError):
        return Unavailable(
            f"The Ray workers cannot import Steward ({cause}): install ml-steward, the same "
            "version, on every node of the cluster, or run with `--engine local`."
        )
    return cause if isinstance(cause, Exception) else exc


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise InvalidInput(
            "The 'ray' engine needs Ray, which is not installed. Install the extra with "
            f"`{RAY_INSTALL_HINT}`, or run with `--engine local`.",
            field="engine",
        ) from exc
    return ray


def _connected(ray: Any) -> Any:
    """``read_partition`` as a remote function, Ray connected first if it is not yet."""
    global _remote_read
    with _lock:
        if not ray.is_initialized():
            _init(ray)
        if _remote_read is None:
            _remote_read = ray.remote(read_partition)
        return _remote_read


def _init(ray: Any) -> None:
    # RAY_ADDRESS is Ray's own variable (ray.init reads it too), not a Steward setting: it is
    # looked at only to know whether ray.init connects (and then takes no resource arguments)
    # or starts a local Ray (which gets a few CPUs and no dashboard).
    address = os.environ.get("RAY_ADDRESS") or None  # noqa: TID251
    options: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False}
    if address is None:
        options.update(address="local", num_cpus=LOCAL_RAY_CPUS, include_dashboard=False)
    else:
        options.update(address=address)
    try:
        ray.init(**options)
    except (ConnectionError, TimeoutError) as exc:
        raise Unavailable(
            f"Cannot connect to the Ray cluster at RAY_ADDRESS={address!r}: {exc}. Check that "
            "the cluster is up, the address is right and, if the cluster uses token "
            "authentication, that RAY_AUTH_MODE=token and its token are set here; or unset "
            "RAY_ADDRESS to start a local Ray, or run with `--engine local`."
        ) from exc


__all__ = ["LOCAL_RAY_CPUS", "RAY_INSTALL_HINT", "engine_named", "ray_engine", "shutdown"]

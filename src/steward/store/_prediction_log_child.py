"""The prediction log's column blocks turned into Parquet files by a child process.

Used with ``writer="process"`` (``STEWARD_PREDICTION_LOG_WRITER``), which is opt-in:
docs/prediction-log.md says why it is not the default.

Why a process: the writer thread shares the server's GIL. Building a flush's table and opening
and closing its Parquet file hold the GIL in pieces of 0.1-0.4 ms (pyarrow's Python side), and
a request that arrives during one waits for its end: with the log switched off, ONNX
`/predict` at concurrency 1 had a p99 of 0.67 ms against 0.79 ms as shipped and the bare app's
0.63 (docs/benchmarks.md). Here the server's writer thread only sends the blocks' arrays down a
pipe (the writes give the GIL back) with a small pickle of the requests' fields, and waits for
the answer; the child, with a GIL of its own, builds the tables and writes the files.

Why a pipe and not shared memory: a block of 1,000 one-row requests of 20 features is ~100 KB;
copying it through the kernel costs tens of microseconds of CPU, none of them under the
server's GIL, and a pipe leaves nothing behind when either side dies (``multiprocessing``'s
shared memory registers every segment with a tracker process and warns about "leaks" at exit).

Why not ``multiprocessing``: its spawn start method imports the parent's ``__main__`` again in
the child (the ``steward`` script, pytest...), and its connections pickle each message whole,
arrays included. A plain subprocess reading length-prefixed pickles with out-of-band buffers
(protocol 5) does neither.

Two children at most, as there are two writing threads: the writer thread's child runs at idle
priority (``SCHED_IDLE``, Linux), so the server's threads always run first on a shared core;
the helper thread's (both are started with the writer) runs niced (`WRITER_NICE`), so that a
saturated core, where the helper is called in, still gives the log some time. One child
cannot be both: a process at idle priority may not leave it without a privilege
(``CAP_SYS_NICE`` or a raised ``RLIMIT_NICE``), and one stuck at idle priority on a saturated
core could not even read that it should.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

_HEAD = struct.Struct("<II")  # the pickle's length, the number of out-of-band buffers
# How much lower than the server's threads the helper thread and its child run (a nice
# increment, Linux): enough that the OS scheduler runs the event loop as soon as a request
# arrives instead of letting a flush finish its time slice first; not so much that a saturated
# core starves them (weight 110 against 1,024: ~10% of a busy core, where the log needs ~3% at
# full load).
WRITER_NICE = 10
_PIPE_BYTES = 1024 * 1024  # Linux's default ceiling for an unprivileged process
_SAME = "same"  # in place of a signature the child was already sent for the deployment
_UNSET = object()


class ChildGone(Exception):
    """The child process could not be started, or died: the caller writes in-process."""


class ChildWriteFailed(Exception):
    """The child could not write a file (its message names why); nothing else is wrong."""


# -- framing (both sides) ----------------------------------------------------------------------


def send(out: IO[bytes], message: Any) -> None:
    """``message`` pickled with its large buffers (numpy arrays) written as they are, unpickled."""
    buffers: list[pickle.PickleBuffer] = []
    meta = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    raws = [buffer.raw() for buffer in buffers]
    sizes = struct.pack(f"<{len(raws)}Q", *(raw.nbytes for raw in raws))
    _write_all(out, _HEAD.pack(len(meta), len(raws)) + sizes + meta)
    for raw in raws:
        _write_all(out, raw)


def receive(source: IO[bytes]) -> Any:
    """The next message; EOFError when the other side closed the pipe between two messages."""
    head = _read_exact(source, _HEAD.size, at_start=True)
    meta_size, count = _HEAD.unpack(head)
    sizes = struct.unpack(f"<{count}Q", _read_exact(source, 8 * count))
    meta = _read_exact(source, meta_size)
    buffers = [_read_exact(source, size) for size in sizes]
    return pickle.loads(meta, buffers=buffers)


def _write_all(out: IO[bytes], data: Any) -> None:
    view = memoryview(data).cast("B")
    while view:
        written = out.write(view)
        if written is None:  # a non-blocking pipe would; ours block
            raise BlockingIOError("the prediction log child's pipe is not blocking")
        view = view[written:]


def _read_exact(source: IO[bytes], size: int, *, at_start: bool = False) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = source.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            if at_start and got == 0:
                raise EOFError
            raise ChildGone("the pipe closed in the middle of a message")
        got += n
    return buffer


# -- the parent's side -------------------------------------------------------------------------


class BlockWriterProcess:
    """One child process writing files of column blocks under ``root``, one write at a time."""

    def __init__(self, root: str, compression: str, *, idle: bool, starts: int) -> None:
        self.root = root
        self.compression = compression
        self.idle = idle
        self._starts_left = starts  # a child that keeps dying is not started forever
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._signatures: dict[str, Any] = {}  # what the running child was told

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def gave_up(self) -> bool:
        """Every start allowed was used and the last child is gone."""
        return self._starts_left <= 0 and self._process is None

    def write(
        self, deployment: str, hour: str, blocks: Sequence[Any], signature: Any, *,
        names: list[str],
    ) -> None:  # fmt: skip
        """Write ``blocks`` as the files ``names`` of the partition (one per table `_tables`
        makes of them). Raises `ChildWriteFailed` when the child could not write (its reason
        in the message), `ChildGone` when no child is there to answer: one that died is
        replaced once (the files keep their names, so what it wrote is written over, not
        twice)."""
        message = (deployment, hour, list(blocks), signature, names)
        with self._lock:
            try:
                outcome, detail = self._exchange(*message)
            except ChildGone:
                outcome, detail = self._exchange(*message)
        if outcome != "ok":
            raise ChildWriteFailed(detail)

    def _exchange(self, deployment: str, hour: str, blocks: list[Any], signature: Any,
                  names: list[str]) -> tuple[str, Any]:  # fmt: skip
        process = self._started()
        assert process.stdin is not None
        assert process.stdout is not None
        # The child keeps each deployment's signature: pickling one of 20 columns took as
        # long as the rest of a 1,000-request message (measured).
        told = self._signatures.get(deployment, _UNSET) is signature
        self._signatures[deployment] = signature
        message = (deployment, hour, blocks, _SAME if told else signature, names)
        try:
            send(process.stdin, message)
            answer: tuple[str, Any] = receive(process.stdout)
        except (OSError, EOFError, ChildGone, pickle.UnpicklingError) as error:
            self._discard()
            raise ChildGone(f"the prediction log's writer process stopped: {error!r}") from None
        return answer

    def start(self) -> None:
        """Start the child ahead of the first write (its imports take ~1.4 s of CPU); a child
        that cannot start is reported by the first write."""
        with self._lock:
            try:
                self._started()
            except ChildGone:
                self._starts_left += 1  # not a death: the first write tries again

    def close(self) -> None:
        """Stop the child. Idempotent. Every write it was sent has been answered (they are made
        one at a time, under the lock), so it is killed rather than asked to exit: at idle
        priority on a busy core it might not run again for a long while."""
        with self._lock:
            self._discard()

    def _started(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._discard()
        if self._starts_left <= 0:
            raise ChildGone("the prediction log's writer process was started too many times")
        self._starts_left -= 1
        # -c rather than -m: the child imports this very ``steward`` package, wherever it was
        # imported from (a source tree put first on the path, say).
        package_parent = str(Path(__file__).resolve().parents[2])
        start = (
            f"import sys; sys.path.insert(0, {package_parent!r}); "
            f"from {__name__} import main; main(sys.argv[1:])"
        )
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", start, self.root, self.compression,
                 "idle" if self.idle else "niced"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
            )  # fmt: skip
        except OSError as error:
            raise ChildGone(f"could not start the prediction log's writer: {error}") from None
        assert process.stdin is not None
        _widen(process.stdin)
        self._signatures.clear()
        self._process = process
        return process

    def _discard(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait()
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()


def _widen(pipe: IO[bytes]) -> None:
    """A pipe of 1 MiB where Linux allows it (the default 64 KiB takes a 100-row block in a
    dozen pieces, each a wake-up of both processes)."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)  # type: ignore[attr-defined,unused-ignore]
    except (ImportError, AttributeError, OSError):
        logger.debug("the prediction log's pipe keeps its default size", exc_info=True)


# -- the child's side --------------------------------------------------------------------------


def _serve(
    root: str, compression: str, source: IO[bytes], answers: IO[bytes], *, idle: bool
) -> None:
    import numpy as np
    import pyarrow as pa

    from steward.store import prediction_log

    # Imported at the priority of the thread that started us (the one making the writer,
    # as the server starts): at idle priority a saturated core would never let the imports
    # finish, and a process at idle priority may not leave it. pyarrow's first conversion
    # of an array imports pandas when it is installed (~0.6 s): that too before.
    pa.array(np.zeros(1))
    _lower_priority(idle=idle)

    writer = prediction_log.PredictionLogWriter(
        root,
        queue_size=1,
        flush_rows=1,
        flush_seconds=1.0,
        compression=compression,  # type: ignore[arg-type]
    )
    signatures: dict[str, Any] = {}
    while True:
        try:
            deployment, hour, blocks, signature, names = receive(source)
        except EOFError:
            return
        if isinstance(signature, str) and signature == _SAME:
            signature = signatures[deployment]
        signatures[deployment] = signature
        try:
            tables = prediction_log._tables(blocks, signature)
            if len(tables) > len(names):
                raise ValueError(f"{len(tables)} tables for {len(names)} file names")
            for table, name in zip(tables, names, strict=False):
                writer._write_file(deployment, hour, table, name=name)
        except Exception as error:  # reported to the parent, which logs and counts it
            send(answers, ("error", f"{type(error).__name__}: {error}"))
        else:
            send(answers, ("ok", None))


def _lower_priority(*, idle: bool) -> None:
    """This process at idle priority, or niced by `WRITER_NICE` (Linux; elsewhere nothing)."""
    if sys.platform != "linux":
        return
    try:
        if idle:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        else:
            # at nice `WRITER_NICE`, or left as it is when the thread that made the writer
            # (whose nice we inherit) was niced further already
            os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), WRITER_NICE))
    except OSError:
        logger.debug("could not lower the prediction log writer's priority", exc_info=True)


def main(argv: list[str]) -> None:
    root, compression, priority = argv
    # The pipe on stdout is the parent's; anything else printed goes to stderr.
    answers = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    source = os.fdopen(0, "rb", buffering=0)
    _serve(root, compression, source, answers, idle=priority == "idle")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Running the helper scripts of the crash and concurrency tests as separate processes."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from pathlib import Path

HERE = Path(__file__).parent


class Child:
    """A Python process running one of this folder's scripts, its stdout read line by line."""

    def __init__(self, script: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def expect(self, prefix: str, timeout: float = 60) -> str:
        """The next stdout line, which must start with ``prefix``."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise AssertionError(f"no {prefix!r} from the child in {timeout}s") from None
        if line is None or not line.startswith(prefix):
            self.proc.wait(timeout=30)
            stderr = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"expected {prefix!r} from the child, got {line!r}\n{stderr}")
        return line

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def kill(self) -> int:
        self.proc.kill()  # SIGKILL: no finally blocks, no atexit, no rollback by the child
        return self.proc.wait(timeout=30)

    def wait(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout=timeout)
        if code != 0:
            stderr = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"the child exited with {code}:\n{stderr}")
        return code

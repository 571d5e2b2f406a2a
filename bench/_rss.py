"""The process's resident memory, read from Linux's /proc, for the benchmarks' peak figures."""

from __future__ import annotations

MB = 1 << 20


def status_mb(field: str) -> float:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in MB; NaN where there is none."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / MB
    return float("nan")


def reset_peak() -> None:
    """Start VmHWM (the peak) again from the current RSS."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

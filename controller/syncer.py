"""Durable audit records without blocking the event loop.

An fsync can take tens of milliseconds on a busy disk; done on the loop's thread it would
starve the heartbeat and let the device's watchdog (75 ms on the board) trip mid-session. So
the session appends and flushes each record on the loop (it is in the OS and survives a killed
process at once) and this thread fsyncs the file right after, coalescing bursts. `close()`
does a last fsync before returning.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path


class BackgroundSync:
    def __init__(self, path: str | Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._wanted = threading.Event()
        self._closing = False
        self.syncs = 0
        self.errors: list[OSError] = []
        self._thread = threading.Thread(target=self._run, name="audit-fsync", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._wanted.set()

    def _sync(self) -> None:
        try:
            # fsync on any descriptor of the file flushes the file's data (Linux, BSD, macOS).
            os.fsync(self._fd)
            self.syncs += 1
        except OSError as exc:
            self.errors.append(exc)

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._closing:
                return
            self._sync()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._wanted.set()
        self._thread.join(5)
        self._sync()
        with contextlib.suppress(OSError):
            os.close(self._fd)

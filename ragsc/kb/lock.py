"""The writer lock of a knowledge base: ``writer.lock``, held with ``flock`` by the one writer.

The holder writes its pid and start time into the file, so a refused or waiting writer can say who holds
it. A writer may wait for the lock (``wait_s``) and says so once; without waiting, a busy KB is refused at
once. The lock is released by :meth:`WriterLock.release` or when the process dies (``flock``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from ragsc.errors import KBError
from ragsc.kb.manifest import LOCK

log = logging.getLogger("ragsc.kb")


class WriterLock:
    """``writer.lock`` of the KB at ``path``.

    Parameters
    ----------
    path
        The KB folder.
    wait_s
        How long :meth:`acquire` waits for another process's lock (default: fail at once).
    on_wait
        Called once with a message (which KB, how long, who holds the lock) when :meth:`acquire` has to
        wait; by default the message is logged.
    """

    def __init__(self, path: Path, wait_s: float = 0.0, on_wait: Callable[[str], None] | None = None) -> None:
        self.path, self.wait_s, self.on_wait = path, wait_s, on_wait
        self._file = None

    @property
    def held(self) -> bool:
        return self._file is not None and not self._file.closed

    def acquire(self) -> None:
        """Take the lock (waiting up to ``wait_s``) and write this process's pid into the file.

        Raises
        ------
        KBError
            Another process holds it (named by the pid it wrote), or the lock file cannot be opened.
        """
        try:
            self._file = open(self.path / LOCK, "a+")
        except OSError as exc:
            raise KBError(f"cannot start writing to {self.path}: {exc}") from None
        deadline = time.monotonic() + self.wait_s
        said = False
        while True:
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    if not said:
                        self._say(f"waiting up to {self.wait_s:g} s for the writer lock of knowledge base "
                                  f"{self.path} (held by {self._holder()})")
                        said = True
                    time.sleep(0.05)
                    continue
            holder = self._holder()
            self._file.close()
            waited = f" (waited {self.wait_s:g} s)" if self.wait_s > 0 else ""
            raise KBError(f"knowledge base {self.path} is being written by another process ({holder})"
                          f"{waited}; only one writer at a time — wait for it to finish") from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        self._file.flush()

    def release(self) -> None:
        if not self.held:
            return
        try:
            fcntl.flock(self._file, fcntl.LOCK_UN)
        finally:
            self._file.close()

    def _holder(self) -> str:
        self._file.seek(0)
        return self._file.read().strip() or "unknown"

    def _say(self, message: str) -> None:
        if self.on_wait is not None:
            self.on_wait(message)
        else:
            log.warning(message)

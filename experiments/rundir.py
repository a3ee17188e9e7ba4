"""A run directory that is safe to share with a second command or a kill.

* :class:`RunLock`: one run per workdir. The lock is an ``fcntl.flock`` on ``workdir/.lock``
  (the holder's pid written inside), so the kernel drops it when the holder dies: a stale
  lock from a dead process is simply taken over.
* :class:`StopRequest`: SIGINT/SIGTERM ask the loop to stop at the end of the current chunk
  (after a checkpoint); a second SIGINT stops at once.
* :func:`atomic_write`: a file of the run directory replaced whole, never torn.
* :func:`disk_full_is_one_line`: a full disk (or quota) while writing a file of the run is
  one :class:`DiskFullError` line naming the file, not a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import tempfile
import threading

from experiments.errors import UserError


class WorkdirError(UserError):
  """The workdir cannot be used (in use by another run, or not writable)."""


class DiskFullError(WorkdirError):
  """The disk (or the quota) of the workdir is full."""


@contextlib.contextmanager
def disk_full_is_one_line(path: str):
  """Turns ENOSPC/EDQUOT while writing ``path`` into one :class:`DiskFullError` line."""
  try:
    yield
  except OSError as e:
    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
      raise
    raise DiskFullError(
      f"disk full while writing {path} ({e.strerror or os.strerror(e.errno)}); free space "
      "there and rerun the same command: the run resumes from its last checkpoint."
    ) from e


def atomic_write(path: str, text: str) -> None:
  """Writes ``text`` to ``path`` through a temporary file and ``os.replace`` (never torn)."""
  d = os.path.dirname(os.path.abspath(path))
  with disk_full_is_one_line(path):
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp.", suffix=os.path.basename(path))
    try:
      with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
      os.replace(tmp, path)
    except BaseException:
      if os.path.exists(tmp):
        os.remove(tmp)
      raise


class RunInterrupted(Exception):
  """The run stopped on SIGINT/SIGTERM after writing a checkpoint at ``position``."""

  def __init__(self, workdir: str, position: int, unit: str, signame: str):
    self.workdir, self.position, self.unit, self.signame = workdir, position, unit, signame
    super().__init__(
      f"{signame}: stopped at {unit} {position} with a checkpoint in "
      f"{workdir}; rerun the same command to resume."
    )


def ensure_writable(workdir: str) -> None:
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise WorkdirError(
      f"--workdir {workdir} cannot be created ({e.strerror}); choose a writable directory."
    ) from None
  if not os.access(workdir, os.W_OK | os.X_OK):
    raise WorkdirError(
      f"--workdir {workdir} is not writable; choose a writable directory or fix its permissions."
    )


class RunLock:
  """Holds ``workdir/.lock`` for the life of a run (a context manager)."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, ".lock")
    self._fd = None

  def acquire(self) -> "RunLock":
    ensure_writable(os.path.dirname(self.path))
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
      os.close(fd)
      raise WorkdirError(
        f"--workdir {os.path.dirname(self.path)} is in use by process {holder} (lock "
        f"{self.path}); wait for it to finish or use another --workdir."
      ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    os.fsync(fd)
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is not None:
      try:
        os.ftruncate(self._fd, 0)
      finally:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

  __enter__ = acquire

  def __exit__(self, *exc):
    self.release()


class StopRequest:
  """Catches SIGINT/SIGTERM while the loop runs (main thread only); ``.signame`` is set
  once a stop was asked for. A second SIGINT raises ``KeyboardInterrupt`` at once."""

  def __init__(self):
    self.signame = None
    self._old = {}

  def _handler(self, signum, frame):
    if self.signame is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.signame = signal.Signals(signum).name

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for s in (signal.SIGINT, signal.SIGTERM):
        self._old[s] = signal.signal(s, self._handler)
    return self

  def __exit__(self, *exc):
    for s, h in self._old.items():
      signal.signal(s, h)
    self._old = {}

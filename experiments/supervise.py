"""A multi-process run's supervisor: ``experiments.main --multihost`` (or ``--coordinator``)
runs the real work in a child process and watches it.

When a peer process dies, JAX's coordination service aborts every survivor (a C++
``LOG(FATAL)``: SIGABRT and a stack trace) once the peer has missed its heartbeats for
``--heartbeat_timeout`` seconds; Python cannot catch that inside the process. The supervisor
passes the child's output through, holds back what follows a fatal log line, and turns that
abort into one ``error:`` line and exit status 2. Any other exit is passed on as it is, and
SIGINT/SIGTERM are forwarded to the child (which checkpoints and stops as usual).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

WORKER_ENV = "TAILOPT_SUPERVISED_WORKER"  # set in the child: do the work, do not supervise
_FATAL = re.compile(r"^F\d{4} ")  # an absl FATAL log line: what follows is the abort's trace
_PEER_LOST = ("stopped sending heartbeats", "distributed service detected fatal errors")


def is_worker() -> bool:
  return bool(os.environ.get(WORKER_ENV))


def peer_lost_line(fatal_text: str, heartbeat_timeout: int) -> str:
  """The one line for a survivor aborted by the coordination service, or "" when the abort
  is something else."""
  if not any(p in fatal_text for p in _PEER_LOST):
    return ""
  tasks = re.search(r"stopped sending heartbeats\):\s*([\d,\s]+)", fatal_text)
  which = f" (process {', '.join(tasks.group(1).split())})" if tasks else ""
  return (
    f"error: a peer process of this multi-process run stopped{which}: no heartbeat for "
    f"{heartbeat_timeout} s (--heartbeat_timeout); see its own log for why, then rerun "
    "every process with the same command: the run resumes from its last checkpoint."
  )


def collective_lost_line(exc: BaseException) -> str:
  """The one line (without ``error:``) for a worker whose collective failed because a peer's
  connection closed (gloo raises before the heartbeat timeout), or "" for other errors."""
  text = str(exc)
  if not re.search(r"gloo|connection (reset|closed|refused)|peer", text, re.IGNORECASE):
    return ""
  first = " ".join(text.strip().splitlines()[0].split())[:200]
  return (
    "a peer process of this multi-process run stopped: a collective lost its connection "
    f"({first}); see that process's own log (a silent peer ends the run after "
    "--heartbeat_timeout s), then rerun every process with the same command: the run "
    "resumes from its last checkpoint."
  )


def _die_with_parent() -> None:
  """In the child (Linux): SIGTERM it when the supervisor dies, so a supervisor killed
  by a scheduler leaves no orphan worker holding the devices."""
  try:
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
  except (OSError, AttributeError):
    pass


def run_worker(argv: list[str], heartbeat_timeout: int) -> int:
  """Runs ``python -m experiments.main *argv`` as the worker and returns its exit status
  (2 with one ``error:`` line when a peer was lost)."""
  env = dict(os.environ, **{WORKER_ENV: "1"})
  cmd = [sys.executable, "-m", "experiments.main", *argv]
  child = subprocess.Popen(
    cmd, env=env, stderr=subprocess.PIPE, text=True, bufsize=1, preexec_fn=_die_with_parent
  )

  def forward(signum, frame):
    del frame
    child.send_signal(signum)

  # A Ctrl-C reaches the child directly (same process group): passing it on as well would
  # be a second SIGINT, which escalates the child's graceful stop. SIGTERM (a scheduler's
  # kill of this process) is passed on.
  signal.signal(signal.SIGINT, lambda signum, frame: None)
  signal.signal(signal.SIGTERM, forward)
  held = []
  for line in child.stderr:
    if held or _FATAL.match(line):
      held.append(line)
    else:
      sys.stderr.write(line)
      sys.stderr.flush()
  rc = child.wait()
  line = peer_lost_line("".join(held), heartbeat_timeout) if held else ""
  if line:
    print(line, file=sys.stderr, flush=True)
    return 2
  sys.stderr.write("".join(held))
  return rc if rc >= 0 else 128 - rc

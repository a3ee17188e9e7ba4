"""Which code made a run: the git commit of this checkout and whether it had local edits.

Every run records ``code = {"commit": ..., "dirty": ...}`` in its ``summary.json`` (a run
resumed under other code records every version it ran under), so a report can refuse a
table whose runs came from different code. Changes under ``experiments/results/`` (study
outputs, not code) do not count as edits. Outside a git checkout both fields are None.
"""

from __future__ import annotations

import functools
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git(*args) -> str:
  out = subprocess.run(
    ["git", "-C", ROOT, *args], capture_output=True, text=True, timeout=30, check=True
  )
  return out.stdout.strip()


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
  """``{"commit": sha or None, "dirty": bool or None}`` of this checkout (once per process)."""
  try:
    commit = _git("rev-parse", "HEAD")
    status = _git(
      "status", "--porcelain", "--untracked-files=no", "--", ".", ":!experiments/results"
    )
  except (OSError, subprocess.SubprocessError):
    return {"commit": None, "dirty": None}
  return {"commit": commit, "dirty": bool(status)}


def merge(previous, current: dict) -> list:
  """The versions a run ran under: ``previous`` (a stored list, or None) plus ``current``."""
  versions = [dict(v) for v in (previous or [])]
  if current not in versions:
    versions.append(dict(current))
  return versions

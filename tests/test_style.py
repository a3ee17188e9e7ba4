"""One style: ``ruff check`` (the rules in pyproject.toml) and ``ruff format --check`` over the
repository."""

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ruff():
  try:
    from ruff.__main__ import find_ruff_bin

    return find_ruff_bin()
  except (ImportError, FileNotFoundError):
    return shutil.which("ruff")


RUFF = _ruff()


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed (pip install -e '.[dev]')")
@pytest.mark.parametrize("args", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff(args):
  r = subprocess.run([RUFF, *args, "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
  assert r.returncode == 0, (
    f"`ruff {' '.join(args)} .` found problems (`ruff format .` fixes "
    f"the layout):\n{r.stdout}{r.stderr}"
  )

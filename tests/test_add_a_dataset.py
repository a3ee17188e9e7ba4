"""A dataset is one module plus one config: the README's recipe, run as written.

The test copies the repository's code (``tailopt/``, ``experiments/``, ``configs/``), adds
exactly the two files of README.md's "How to add a dataset" (a data module and a config),
puts the module's artifact in a fresh cache (as a fetch would leave it: the unpacked files
and the ``.complete`` marker; nothing is downloaded), and runs the new config end to end
with ``python -m experiments.main`` for two rounds. No other file is edited.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]
SECTION = "## How to add a dataset"


def recipe_files(readme: str) -> dict[str, str]:
  """``{path: source}`` of the section's indented code blocks that start ``# <path>.py``."""
  section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
  files, block = {}, []
  for line in section.splitlines() + [""]:
    if line.startswith("    ") or (block and not line.strip()):
      block.append(line[4:])
      continue
    text = "\n".join(block).strip("\n") + "\n"
    m = re.match(r"# ((?:experiments/data|configs)/\w+\.py)\n", text)
    if m:
      files[m.group(1)] = text
    block = []
  return files


def _copy_code(dest: pathlib.Path) -> None:
  skip = shutil.ignore_patterns("__pycache__", "results")
  for top in ("tailopt", "experiments", "configs"):
    shutil.copytree(ROOT / top, dest / top, ignore=skip)


def _seed_cache(cache: pathlib.Path) -> None:
  """The ``points`` artifact as a fetch leaves it: three labelled blobs and the marker."""
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(3), 200)
  centres = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
  x = centres[labels] + rng.normal(scale=0.6, size=(600, 2))
  root = cache / "points"
  root.mkdir(parents=True)
  rows = "".join(f"{a:.4f},{b:.4f},{y}\n" for (a, b), y in zip(x, labels))
  (root / "points.csv").write_text(rows)
  (root / ".complete").write_text("pypi points-data==1.0 (seeded by the test)\n")


def test_a_new_dataset_is_one_module_and_one_config(tmp_path):
  files = recipe_files((ROOT / "README.md").read_text(encoding="utf-8"))
  assert set(files) == {"experiments/data/points.py", "configs/points.py"}, sorted(files)
  repo = tmp_path / "repo"
  _copy_code(repo)
  for path, source in files.items():
    assert not (repo / path).exists(), f"{path} is already in the repository"
    (repo / path).write_text(source)
  _seed_cache(tmp_path / "cache")
  env = dict(
    os.environ, PYTHONPATH=str(repo), TAILOPT_DATA_DIR=str(tmp_path / "cache"), JAX_PLATFORMS="cpu"
  )

  def run(*args):
    out = subprocess.run(
      [sys.executable, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, f"{' '.join(args)}:\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
    return out.stdout

  listing = run("-m", "experiments.data.fetch", "--list")
  assert re.search(r"^points\s+fetched\b.*pypi:points-data==1\.0", listing, re.M), listing
  work = tmp_path / "run"
  run(
    "-m",
    "experiments.main",
    "--config",
    "configs/points.py",
    "--workdir",
    str(work),
    "--config.rounds=2",
    "--config.eval_every=1",
    "--config.checkpoint_every=0",
    "--config.progress=False",
  )
  summary = json.loads((work / "summary.json").read_text())
  assert summary["final"]["eval/accuracy"] > 1 / 3, summary["final"]

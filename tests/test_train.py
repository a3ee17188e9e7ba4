"""The runner: resume bit for bit, config validation, checkpoint errors, outputs."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import synthetic as synthetic_config
from experiments import checkpoint as ckpt_lib
from experiments.engines import loop
from experiments.metrics_log import read_jsonl
from experiments.validate import ConfigError, validate

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_config(**overrides):
  c = synthetic_config.get_config("runlocal")
  c.rounds, c.eval_every, c.checkpoint_every = 12, 6, 4
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


@pytest.mark.parametrize("method", ["adam2", pytest.param("bi2clip", marks=pytest.mark.slow)])
def test_interrupted_run_resumes_bit_for_bit(tmp_path, method):
  # Inner Adam state, per-client noise streams and client sampling must all survive.
  cfg = small_config(method=method, participation=5)
  cfg.hparams.inner_lr = 0.01
  full = loop.train(cfg, str(tmp_path / "full"), quiet=True)

  def kill(r, _):
    if r == 10:  # after the checkpoint at round 8; rounds 9-10 are lost
      raise Interrupt

  with pytest.raises(Interrupt):
    loop.train(cfg, str(tmp_path / "cut"), on_chunk_end=kill, quiet=True)
  resumed = loop.train(cfg, str(tmp_path / "cut"), quiet=True)
  assert resumed["resumed_from"] == 8 and resumed["rounds_done"] == 12
  p_full, _ = loop.final_params(cfg, str(tmp_path / "full"))
  p_cut, rec = loop.final_params(cfg, str(tmp_path / "cut"))
  assert rec["round"] == 12 and rec["data_position"] == 12
  jax.tree.map(np.testing.assert_array_equal, p_full, p_cut)
  # The metrics file holds each round once, and the same numbers.
  a = read_jsonl(str(tmp_path / "full" / "metrics.jsonl"))
  b = read_jsonl(str(tmp_path / "cut" / "metrics.jsonl"))
  assert [r["round"] for r in b] == list(range(1, 13))
  assert [r["train/loss"] for r in a] == [r["train/loss"] for r in b]
  assert full["final"] == resumed["final"]


def test_outputs_and_summary(tmp_path):
  cfg = small_config()
  s = loop.train(cfg, str(tmp_path), quiet=True)
  assert s["finished"] and not s["diverged"]
  assert json.load(open(tmp_path / "summary.json"))["rounds_done"] == 12
  rows = read_jsonl(str(tmp_path / "metrics.jsonl"))
  assert {
    "train/loss",
    "train/delta_norm",
    "train/inner_clip_above",
    "train/outer_clip_below",
  } <= set(rows[0])
  assert "eval/loss" in rows[5] and "eval/loss" not in rows[4]
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path))
  assert "best eval/loss" in loop.format_summary(s)
  # The run's method, hyperparameters and final metrics on TensorBoard's HParams tab.
  ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
  hp = ea.EventAccumulator(str(tmp_path / "hparams"))
  hp.Reload()
  assert [e.value for e in hp.Scalars("eval/loss")] == [pytest.approx(s["final"]["eval/loss"])]


def test_eval_at_start_logs_the_initial_model_once(tmp_path):
  """``eval_at_start``: round 0 holds the initial model's eval metrics, once, through a kill
  before the first checkpoint and through a resume; the training numbers are unchanged."""
  from experiments import tasks as tasks_lib

  cfg = small_config(eval_at_start=True)
  plain = loop.train(small_config(), str(tmp_path / "plain"), quiet=True)

  def kill(r, _):
    if r == 2:  # before the first checkpoint (round 4): the run restarts from round 0
      raise Interrupt

  with pytest.raises(Interrupt):
    loop.train(cfg, str(tmp_path / "run"), on_chunk_end=kill, quiet=True)
  s = loop.train(cfg, str(tmp_path / "run"), quiet=True)
  rows = read_jsonl(str(tmp_path / "run" / "metrics.jsonl"))
  assert [r["round"] for r in rows] == list(range(0, 13))
  assert set(rows[0]) == {"round", "sim_time"} | {k for k in rows[6] if k.startswith("eval/")}
  assert rows[0]["sim_time"] == 0.0  # the initial model, at the start of the simulated clock
  data, model = tasks_lib.build_task(cfg)
  p0 = model.init(jax.random.key(cfg.seed))
  want = loop.evaluate(jax.jit(model.evaluate), p0, data.test, cfg.eval_batch_size)
  assert rows[0]["eval/loss"] == pytest.approx(want["loss"], rel=1e-6)
  assert rows[0]["eval/loss"] > rows[12]["eval/loss"]
  plain_rows = read_jsonl(str(tmp_path / "plain" / "metrics.jsonl"))
  assert [r["train/loss"] for r in rows[1:]] == [r["train/loss"] for r in plain_rows]
  assert [r["sim_time"] for r in rows[1:]] == [r["sim_time"] for r in plain_rows]
  assert s["final"] == plain["final"]
  assert ckpt_lib.config_fingerprint(cfg.to_dict()) == ckpt_lib.config_fingerprint(
    small_config().to_dict()
  )


def test_unreadable_checkpoint_is_an_error_naming_the_file(tmp_path):
  cfg = small_config(rounds=4)
  loop.train(cfg, str(tmp_path), quiet=True)
  os.remove(tmp_path / "summary.json")  # as if killed after the last checkpoint
  step_dir = tmp_path / "checkpoints" / "4" / "state"
  for root, _, files in os.walk(step_dir):
    for f in files:
      with open(os.path.join(root, f), "wb") as fh:
        fh.write(b"garbage")
  with pytest.raises(ckpt_lib.CheckpointError, match=r"cannot read checkpoint .*checkpoints/4"):
    loop.train(cfg, str(tmp_path), quiet=True)


def test_checkpoint_from_another_config_is_refused(tmp_path):
  loop.train(small_config(rounds=4), str(tmp_path), quiet=True)
  with pytest.raises(ckpt_lib.CheckpointError, match="different config"):
    loop.train(small_config(rounds=4, method="fedavg"), str(tmp_path), quiet=True)


def test_diverging_run_is_recorded(tmp_path):
  cfg = small_config(method="fedavg")
  cfg.noise.distribution, cfg.noise.alpha, cfg.noise.scale = "cauchy", 1.0, 1e30
  cfg.hparams.inner_lr = 10.0
  s = loop.train(cfg, str(tmp_path), quiet=True)
  assert s["diverged"] and s["rounds_done"] < 12 and s["best"] is None


@pytest.mark.parametrize(
  "field,value,msg",
  [
    ("hparams.inner_lower", 5.0, r"config.hparams.inner_lower=5.0 > config.hparams.inner_upper"),
    ("method", "fedprox", r"config.method='fedprox': Unknown method"),
    ("task", "imagenet", r"config.task='imagenet' is unknown"),
    ("devices", 3, r"config.clients=8 is not divisible by config.devices=3"),
    ("clients", 0, r"config.clients=0 must be >= 1"),
    ("local_steps", 0, r"config.local_steps=0 must be >= 1"),
    ("noise.distribution", "levy", r"config.noise.distribution='levy' is unknown"),
    ("participation", 9, r"config.participation=9 > config.clients=8"),
    ("hparams.inner_lr", -1.0, r"config.hparams.inner_lr=-1.0 is negative"),
    # Accepted silently before: non-finite rates, negative noise scale, momentum >= 1,
    # keep_checkpoints = 0, a report metric that is never logged.
    ("hparams.inner_lr", float("nan"), r"config.hparams.inner_lr=nan is not finite"),
    ("hparams.outer_lr", float("inf"), r"config.hparams.outer_lr=inf is not finite"),
    ("noise.scale", -1.0, r"config.noise.scale=-1.0 must be a finite number >= 0"),
    # bi2clip has no momentum: the override is refused as unused (with diloco it is a
    # range error, tests/test_configs.py).
    (
      "hparams.momentum",
      1.5,
      r"config.hparams.momentum is set but config.method='bi2clip' "
      r"does not use it",
    ),
    ("keep_checkpoints", 0, r"config.keep_checkpoints=0 must be >= 1"),
    ("eval_every", 0, r"config.report_metric='eval/loss' is never logged: evaluation is off"),
    ("report_metric", "loss", r"config.report_metric='loss' must name a logged metric"),
    ("mesh.model", 16, r"config.mesh.model=16 but only 8 devices exist"),
    ("mesh.model", 0, r"config.mesh.model=0 must be an integer >= 1"),
    ("client_loop", "pmap", r"config.client_loop='pmap' is unknown"),
    ("shard_outer", "yes", r"config.shard_outer=.yes. is unknown; use .auto., .on. or .off."),
    ("chunk", -1, r"config.chunk=-1 must be >= 0"),
  ],
)
def test_validation_names_field_and_fix(field, value, msg):
  from experiments import tasks

  with pytest.raises(ConfigError, match=msg):
    validate(small_config(**{field: value}), tasks.TASKS)


def test_validation_lists_every_problem_one_line_each():
  from experiments import tasks

  c = small_config(clients=0, keep_checkpoints=0, **{"hparams.inner_lr": float("nan")})
  with pytest.raises(ConfigError) as e:
    validate(c, tasks.TASKS)
  lines = str(e.value).splitlines()
  assert len(lines) == 3 and all(l.startswith("config.") for l in lines), lines


@pytest.mark.parametrize(
  "metric,msg",
  [
    ("eval/accuracy", r"this task's eval metrics are \['eval/loss'\]"),
    ("train/nonexistent", r"the run logs \[.*'train/loss'"),
  ],
)
def test_report_metric_that_is_never_logged_is_refused(tmp_path, metric, msg):
  cfg = small_config(rounds=2, report_metric=metric)
  with pytest.raises(ConfigError, match=r"config.report_metric=.* is never logged; " + msg):
    loop.train(cfg, str(tmp_path), quiet=True)


def test_config_type_errors_come_from_configdict():
  c = small_config()
  with pytest.raises(TypeError):
    c.rounds = "many"


def test_cli_runs_and_reports_bad_config(tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT)
  cmd = [
    sys.executable,
    "-m",
    "experiments.main",
    "--config",
    "configs/synthetic.py:runlocal",
    "--workdir",
    str(tmp_path),
    "--config.hparams.inner_lower=3.0",
    "--config.progress=False",
  ]
  out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode != 0
  assert "config.hparams.inner_lower=3.0 > config.hparams.inner_upper=1.0" in out.stderr
  cmd = cmd[:-2] + ["--config.rounds=3", "--config.progress=False"]
  out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "tailopt run: bi2clip on synthetic" in out.stdout


def test_sampled_clients_keep_their_inner_state_across_rounds_and_resume(tmp_path):
  """32 dataset clients, 8 sampled per round, inner Adam: each real client's Adam state
  lives in the host-side store, so its step count is z x (rounds it took part in); a killed
  run resumes bit for bit, store included."""
  cfg = small_config(method="adam2", data_clients=32)
  cfg.hparams.inner_lr = 0.01
  full = loop.train(cfg, str(tmp_path / "full"), quiet=True)

  def kill(r, _):
    if r == 10:
      raise Interrupt

  with pytest.raises(Interrupt):
    loop.train(cfg, str(tmp_path / "cut"), on_chunk_end=kill, quiet=True)
  resumed = loop.train(cfg, str(tmp_path / "cut"), quiet=True)
  assert resumed["resumed_from"] == 8
  p_full, _ = loop.final_params(cfg, str(tmp_path / "full"))
  p_cut, rec = loop.final_params(cfg, str(tmp_path / "cut"))
  jax.tree.map(np.testing.assert_array_equal, p_full, p_cut)
  assert full["final"] == resumed["final"]

  engine, _, record = loop.final_state(cfg, str(tmp_path / "cut"))
  taken = {}
  for t in range(12):
    for i in engine.batches.client_ids(t):
      taken[int(i)] = taken.get(int(i), 0) + 1
  assert record["stored_clients"] == len(taken) == len(engine.store)
  counts = [
    x
    for x in jax.tree.leaves(engine.store.gather(sorted(taken)))
    if np.asarray(x).dtype == np.int32 and np.ndim(x) == 1
  ]
  assert counts, "the inner Adam state has a step count"
  np.testing.assert_array_equal(counts[0], [cfg.local_steps * taken[i] for i in sorted(taken)])

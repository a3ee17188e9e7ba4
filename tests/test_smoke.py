"""One smoke per entry path of the experiments, in the default suite (the rest of the
experiments' tests are behind ``slow``): a synchronous run from the command line, an
asynchronous run, a run killed and resumed bit for bit, and one family's ``:runlocal``."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from configs import async_synthetic
from configs import synthetic as synthetic_config
from experiments.engines import loop
from experiments.metrics_log import read_jsonl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny(c):
  c.synthetic.examples_per_client, c.synthetic.test_examples, c.synthetic.dim = 64, 128, 8
  c.progress = False
  return c


def test_sync_run_from_the_command_line(tmp_path):
  wd = tmp_path / "run"
  cmd = [sys.executable, "-m", "experiments.main", "--config", "configs/synthetic.py:runlocal"]
  cmd += ["--workdir", str(wd), "--config.rounds=6", "--config.eval_every=3"]
  out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  s = json.load(open(wd / "summary.json"))
  assert s["finished"] and s["done"] == 6 and np.isfinite(s["final"]["eval/loss"])
  assert [r["round"] for r in read_jsonl(str(wd / "metrics.jsonl"))] == list(range(1, 7))
  assert f"tensorboard --logdir {wd}" in out.stdout + out.stderr


def test_async_run(tmp_path):
  c = _tiny(async_synthetic.get_config("runlocal"))
  c.server_steps, c.chunk, c.eval_every, c.checkpoint_every = 8, 4, 4, 0
  # 4 workers (one a straggler), K = 2: the same buffered path with fewer wave widths to
  # compile than 8 workers (the simulator compiles one copy of the job code per width).
  c.clients, c.asynchronous.buffer_size = 4, 2
  s = loop.train(c, str(tmp_path), quiet=True)
  assert s["finished"] and s["server_steps"] == 8 and s["sim_time"] > 0
  assert np.isfinite(s["final"]["train/loss"])


class _Kill(Exception):
  pass


def test_killed_run_resumes_bit_for_bit(tmp_path):
  c = _tiny(synthetic_config.get_config("runlocal"))
  c.rounds, c.eval_every, c.checkpoint_every, c.method = 8, 2, 4, "adam2"
  c.hparams.inner_lr = 0.01
  loop.train(c, str(tmp_path / "full"), quiet=True)

  def kill(r, _):
    if r == 6:  # after the checkpoint at round 4; rounds 5-6 are lost
      raise _Kill

  with pytest.raises(_Kill):
    loop.train(c, str(tmp_path / "cut"), on_chunk_end=kill, quiet=True)
  resumed = loop.train(c, str(tmp_path / "cut"), quiet=True)
  assert resumed["resumed_from"] == 4
  a, _ = loop.final_params(c, str(tmp_path / "full"))
  engine, state, _ = loop.final_state(c, str(tmp_path / "cut"))
  jax.tree.map(np.testing.assert_array_equal, a, jax.device_get(engine.params(state)))
  # adam2 on the 8 devices: its outer moments were saved and restored split over them.
  assert engine.rnd.shard_outer
  moments = [x for x in jax.tree.leaves(state.outer_state) if x.ndim]
  assert moments and all(x.sharding.spec == P("clients") for x in moments)
  rows = [read_jsonl(str(tmp_path / d / "metrics.jsonl")) for d in ("full", "cut")]
  assert rows[0] == rows[1]


def test_a_family_runlocal(tmp_path):
  from _data_helpers import need
  from configs import fashion_mnist

  need("fashion-mnist")
  c = fashion_mnist.get_config("cnn,runlocal")
  c.rounds, c.eval_every, c.checkpoint_every, c.progress = 2, 2, 0, False
  s = loop.train(c, str(tmp_path), quiet=True)
  assert s["finished"] and np.isfinite(s["final"]["train/loss"])
  assert 0.0 <= s["final"]["eval/accuracy"] <= 1.0

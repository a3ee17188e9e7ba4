"""Two processes on localhost (jax.distributed, gloo CPU collectives, 4 devices each) run a
config through ``experiments.main``: the result matches the single-process 8-device run,
only process 0 writes the run directory, and a resumed two-process run is bit-identical."""

import json
import os
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments import cli
from experiments.engines import loop

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "configs/synthetic.py:runlocal"
OVERRIDES = ["rounds=12", "checkpoint_every=6", "eval_every=6", "progress=False"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _process_env() -> dict:
  """The environment of one of the two processes: CPU, 4 devices, this checkout first."""
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
  env.update(
    JAX_PLATFORMS="cpu",
    XLA_FLAGS="--xla_force_host_platform_device_count=4",
    PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""),
  )
  return env


def _launch_two(workdir, config=CONFIG, overrides=OVERRIDES):
  """Runs the config on two processes; returns their (returncode, output)."""
  port = _free_port()
  env = _process_env()
  cmd = [
    sys.executable,
    "-m",
    "experiments.main",
    "--config",
    config,
    "--workdir",
    workdir,
    "--coordinator",
    f"localhost:{port}",
    "--num_processes",
    "2",
  ]
  cmd += [f"--config.{o}" for o in overrides]
  procs = [
    subprocess.Popen(
      cmd + ["--process_id", str(i)],
      cwd=ROOT,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for i in range(2)
  ]
  out = []
  for p in procs:
    try:
      text, _ = p.communicate(timeout=240)
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail("two-process run did not finish in 240 s")
    out.append((p.returncode, text))
  return out


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_two_processes_match_one_and_resume_bit_identically(tmp_path):
  config = cli.load_config(CONFIG, OVERRIDES)
  two = str(tmp_path / "two")
  out = _launch_two(two)
  for i, (rc, text) in enumerate(out):
    assert rc == 0, f"process {i} failed:\n{text[-3000:]}"
  assert "tailopt run" in out[0][1] and "tailopt run" not in out[1][1]  # one summary
  # Process 0 alone wrote the run directory: one line per round, one event file.
  rows = [json.loads(line) for line in open(os.path.join(two, "metrics.jsonl"))]
  assert [r["round"] for r in rows] == list(range(1, 13))
  assert len([f for f in os.listdir(two) if f.startswith("events.out")]) == 1
  p_two, rec = loop.final_params(config, two)
  assert rec["round"] == 12

  # The same config on one process with 8 devices: the same numbers (the all-reduces run
  # through gloo instead of in-process, so up to float rounding).
  one = str(tmp_path / "one")
  loop.train(config, one, quiet=True)
  p_one, _ = loop.final_params(config, one)
  for a, b in zip(_leaves(p_two), _leaves(p_one)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

  # A two-process run killed after the checkpoint at round 6 (its last checkpoint and
  # summary gone) resumes on two processes to exactly the uninterrupted result.
  shutil.rmtree(os.path.join(two, "checkpoints", "12"))
  os.remove(os.path.join(two, "summary.json"))
  out = _launch_two(two)
  for i, (rc, text) in enumerate(out):
    assert rc == 0, f"process {i} failed on resume:\n{text[-3000:]}"
  p_res, rec = loop.final_params(config, two)
  assert rec["round"] == 12
  for a, b in zip(_leaves(p_res), _leaves(p_two)):
    np.testing.assert_array_equal(a, b)
  rows2 = [json.loads(line) for line in open(os.path.join(two, "metrics.jsonl"))]
  strip = lambda rs: [{k: v for k, v in r.items() if k != "time"} for r in rs]  # noqa: E731
  assert strip(rows2) == strip(rows)


ASYNC = "configs/async_synthetic.py:runlocal"
ASYNC_OVERRIDES = [
  "server_steps=12",
  "chunk=3",
  "checkpoint_every=6",
  "eval_every=6",
  "progress=False",
  "devices=8",
  "clock.failure_rate=0.02",
  "clock.rejoin_rate=0.2",
]


def test_async_two_processes_match_one_and_resume_bit_identically(tmp_path):
  """The simulator on two processes (4 devices each): every process computes the same event
  schedule, a wave's jobs are sharded over all 8 devices, process 0 alone writes; the result
  matches the one-process 8-device run, and a killed run resumes bit for bit."""
  config = cli.load_config(ASYNC, ASYNC_OVERRIDES)
  two = str(tmp_path / "two")
  out = _launch_two(two, ASYNC, ASYNC_OVERRIDES)
  for i, (rc, text) in enumerate(out):
    assert rc == 0, f"process {i} failed:\n{text[-3000:]}"
  assert "tailopt async run" in out[0][1] and "tailopt async run" not in out[1][1]
  rows = [json.loads(line) for line in open(os.path.join(two, "metrics.jsonl"))]
  assert [r["round"] for r in rows] == list(range(1, 13))
  assert os.path.exists(os.path.join(two, "tau.json"))
  p_two, rec = loop.final_params(config, two)
  assert rec["round"] == 12

  one = str(tmp_path / "one")
  loop.train(config, one, quiet=True)
  p_one, _ = loop.final_params(config, one)
  for a, b in zip(_leaves(p_two), _leaves(p_one)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert not np.allclose(_leaves(p_one)[0], 0)
  rows_one = [json.loads(line) for line in open(os.path.join(one, "metrics.jsonl"))]
  assert [r["time"] for r in rows_one] == [r["time"] for r in rows]  # one schedule

  shutil.rmtree(os.path.join(two, "checkpoints", "12"))
  os.remove(os.path.join(two, "summary.json"))
  out = _launch_two(two, ASYNC, ASYNC_OVERRIDES)
  for i, (rc, text) in enumerate(out):
    assert rc == 0, f"process {i} failed on resume:\n{text[-3000:]}"
  p_res, rec = loop.final_params(config, two)
  assert rec["round"] == 12
  for a, b in zip(_leaves(p_res), _leaves(p_two)):
    np.testing.assert_array_equal(a, b)
  rows2 = [json.loads(line) for line in open(os.path.join(two, "metrics.jsonl"))]
  assert rows2 == rows


def test_a_lost_peer_ends_the_survivor_with_one_error_line(tmp_path):
  """Process 1 is killed mid-run (with its supervisor); process 0 ends within the heartbeat
  timeout with one ``error:`` line naming the lost process, exit status 2, no C++ trace."""
  import signal
  import time

  port = _free_port()
  env = _process_env()
  cmd = [sys.executable, "-m", "experiments.main", "--config", CONFIG, "--workdir"]
  cmd += [str(tmp_path / "run"), "--coordinator", f"localhost:{port}", "--num_processes", "2"]
  cmd += ["--heartbeat_timeout=5", "--config.rounds=100000", "--config.checkpoint_every=0"]
  cmd += ["--config.eval_every=100000", "--config.progress=False"]
  procs = [
    subprocess.Popen(
      cmd + ["--process_id", str(i)],
      cwd=ROOT,
      env=env,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
      start_new_session=True,  # its own group: killing it kills supervisor and worker
    )
    for i in range(2)
  ]
  try:
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 180
    while not (metrics.exists() and metrics.stat().st_size > 0):
      assert time.monotonic() < deadline, "the two-process run never started training"
      assert procs[0].poll() is None, procs[0].communicate()[1][-2000:]
      time.sleep(0.5)
    os.killpg(procs[1].pid, signal.SIGKILL)
    killed = time.monotonic()
    _, err = procs[0].communicate(timeout=120)
    waited = time.monotonic() - killed
  finally:
    for p in procs:
      if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
  lines = [ln for ln in err.strip().splitlines() if ln.strip()]
  assert procs[0].returncode == 2, err[-3000:]
  assert lines[-1].startswith("error: a peer process of this multi-process run stopped"), err
  assert "--heartbeat_timeout" in lines[-1]  # the process is named when JAX's message does
  assert "Check failure stack trace" not in err and waited < 60


def test_peer_lost_line_reads_jaxs_abort():
  from experiments import supervise

  fatal = (
    "F1202 19:34:07.250245 13736 client.h:80] Terminating process because the JAX "
    "distributed service detected fatal errors. ... absl::Status: UNAVAILABLE: The following "
    "tasks are unhealthy (stopped sending heartbeats):\n1\nThe tasks have crashed.\n"
  )
  line = supervise.peer_lost_line(fatal, 7)
  assert line.startswith("error: a peer process of this multi-process run stopped (process 1)")
  assert "no heartbeat for 7 s" in line
  assert supervise.peer_lost_line("F1202 12:00:00 other.cc:1] Check failed: x\n", 7) == ""
  gloo = RuntimeError("Gloo error: Connection closed by peer [127.0.0.1]:4242")
  assert supervise.collective_lost_line(gloo).startswith("a peer process of this multi-process")
  assert supervise.collective_lost_line(ValueError("shapes differ")) == ""

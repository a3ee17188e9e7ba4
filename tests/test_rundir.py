"""A run directory never loses a run: lock, finished reruns, torn lines, TensorBoard after
resume, SIGINT/SIGTERM, and every user error as one line with exit status 2."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from experiments import main as main_lib
from experiments.engines import loop
from experiments.metrics_log import MetricWriter, read_jsonl
from experiments.rundir import RunLock, WorkdirError
from _tensorboard_helpers import event_steps
from test_train import small_config

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Kill(Exception):
  pass


def _kill_at(t_kill):
  def cb(t, _):
    if t == t_kill:
      raise Kill

  return cb


# ---------------------------------------------------------------------------- lock


def test_second_run_on_a_workdir_is_refused_naming_the_pid(tmp_path):
  with RunLock(str(tmp_path)):
    with pytest.raises(WorkdirError, match=rf"in use by process {os.getpid()}"):
      loop.train(small_config(rounds=2), str(tmp_path), quiet=True)
  # Released: the run now goes ahead.
  assert loop.train(small_config(rounds=2), str(tmp_path), quiet=True)["finished"]


def test_concurrent_cli_run_exits_2_with_one_line(tmp_path):
  with RunLock(str(tmp_path)):
    out = subprocess.run(
      [
        sys.executable,
        "-m",
        "experiments.main",
        "--config",
        "configs/synthetic.py:runlocal",
        "--workdir",
        str(tmp_path),
      ],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
      env=dict(os.environ, PYTHONPATH=ROOT),
    )
  assert out.returncode == 2
  assert out.stderr.strip().splitlines() == [
    f"error: --workdir {tmp_path} is in use by process {os.getpid()} (lock "
    f"{tmp_path}/.lock); wait for it to finish or use another --workdir."
  ]
  assert not (tmp_path / "metrics.jsonl").exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
  p = subprocess.Popen([sys.executable, "-c", "pass"])
  p.wait()
  (tmp_path / ".lock").write_text(f"{p.pid}\n")  # left behind by a dead run
  assert loop.train(small_config(rounds=2), str(tmp_path), quiet=True)["finished"]


# ---------------------------------------------------------------------------- summary


def test_rerun_of_a_finished_run_reports_the_stored_result(tmp_path, capsys):
  cfg = small_config(rounds=4)
  first = loop.train(cfg, str(tmp_path), quiet=True)
  files = {f: (tmp_path / f).read_bytes() for f in ("summary.json", "metrics.jsonl")}
  again = loop.train(cfg, str(tmp_path))
  assert again == json.loads(json.dumps(first, default=float))
  assert "already finished" in capsys.readouterr().out
  assert files == {f: (tmp_path / f).read_bytes() for f in files}
  assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp.")]


def test_kill_between_last_checkpoint_and_summary_keeps_the_result(tmp_path):
  cfg = small_config(rounds=4)
  first = loop.train(cfg, str(tmp_path), quiet=True)
  os.remove(tmp_path / "summary.json")
  again = loop.train(cfg, str(tmp_path), quiet=True)
  assert again["finished"] and again["final"] == first["final"] and again["final"]
  assert again["best"] == first["best"]
  from experiments import sweep

  assert sweep.score(again) == sweep.score(first) < float("inf")


def test_extending_a_finished_run_resumes_it(tmp_path):
  loop.train(small_config(rounds=4), str(tmp_path), quiet=True)
  s = loop.train(small_config(rounds=8), str(tmp_path), quiet=True)
  assert s["resumed_from"] == 4 and s["rounds_done"] == 8


# ---------------------------------------------------------------------------- metrics


def test_torn_lines_and_records_are_dropped_and_no_step_is_logged_twice(tmp_path):
  cfg = small_config()
  with pytest.raises(Kill):
    loop.train(cfg, str(tmp_path), on_chunk_end=_kill_at(10), quiet=True)
  assert sorted(event_steps(tmp_path)) == list(range(1, 11))
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"round": 11, "train/lo')  # killed mid-write
  with open(next(tmp_path.glob("events.out.tfevents*")), "ab") as f:
    f.write(b"\x05\x00\x00")  # a torn TensorBoard record
  s = loop.train(cfg, str(tmp_path), quiet=True)
  assert s["resumed_from"] == 8 and s["finished"]
  assert [r["round"] for r in read_jsonl(str(tmp_path / "metrics.jsonl"))] == list(range(1, 13))
  assert sorted(event_steps(tmp_path)) == list(range(1, 13))  # 9-10 once, not twice


def test_corrupt_middle_metrics_line_names_the_file_and_line(tmp_path):
  p = tmp_path / "metrics.jsonl"
  p.write_text('{"round": 1}\n{"rou\n{"round": 2}\n')
  with pytest.raises(ValueError, match=r"metrics.jsonl line 2 is not JSON"):
    MetricWriter(str(tmp_path), tensorboard=False).resume(2)


# ---------------------------------------------------------------------------- divergence


def test_exploding_loss_is_reported_as_diverged(tmp_path):
  # Momentum 0.99 with a large outer step explodes without going non-finite at first.
  cfg = small_config(method="fedavgm", rounds=12)
  cfg.noise.distribution = "none"
  cfg.hparams.inner_lr, cfg.hparams.outer_lr, cfg.hparams.momentum = 0.5, 20.0, 0.99
  s = loop.train(cfg, str(tmp_path), quiet=True)
  assert s["diverged"] and s["best"] is None, s["final"]
  assert "train/loss" in s["diverged_reason"]
  assert "DIVERGED" in loop.format_summary(s)


# ---------------------------------------------------------------------------- signals


CLI_ARGS = [
  "--config",
  "configs/synthetic.py:runlocal",
  "--config.rounds=150",
  "--config.checkpoint_every=0",
  "--config.eval_every=100",
  "--config.synthetic.dim=8",
  "--config.synthetic.examples_per_client=64",
  "--config.synthetic.test_examples=128",
  "--config.progress=False",
]


def _cli(workdir, *extra):
  return [sys.executable, "-m", "experiments.main", "--workdir", str(workdir), *CLI_ARGS, *extra]


def _wait_rows(p, metrics, n):
  deadline = time.time() + 300
  while (
    time.time() < deadline
    and p.poll() is None
    and (not metrics.exists() or len(metrics.read_text().splitlines()) < n)
  ):
    time.sleep(0.02)


def test_cli_sigint_and_sigterm_checkpoint_exit_0_and_resume_bit_for_bit(tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT)
  full = subprocess.run(
    _cli(tmp_path / "full"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
  )
  assert full.returncode == 0, full.stderr[-2000:]
  cut = tmp_path / "cut"
  metrics = cut / "metrics.jsonl"
  stopped = 0
  for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, then a preemption
    p = subprocess.Popen(
      _cli(cut), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_rows(p, metrics, stopped + 15)
    p.send_signal(sig)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(signal.Signals(sig).name), err
    assert "rerun the same command to resume" in lines[0]
    now = json.loads(metrics.read_text().splitlines()[-1])["round"]
    assert stopped < now < 150 and not (cut / "summary.json").exists()
    stopped = now
  out = subprocess.run(_cli(cut), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  s = json.load(open(cut / "summary.json"))
  assert s["resumed_from"] == stopped and s["rounds_done"] == 150
  cfg = small_config(rounds=150, checkpoint_every=0, eval_every=100)
  a, _ = loop.final_params(cfg, str(tmp_path / "full"))
  b, _ = loop.final_params(cfg, str(cut))
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert read_jsonl(str(tmp_path / "full" / "metrics.jsonl")) == read_jsonl(str(metrics))


# ---------------------------------------------------------------------------- one-line errors


def _main(capsys, *argv):
  rc = main_lib.main(list(argv))
  err = capsys.readouterr().err.strip().splitlines()
  return rc, err


@pytest.mark.parametrize(
  "argv,expect",
  [
    (["--config", "configs/nope.py"], r"config file 'configs/nope.py' does not exist"),
    (["--config", "configs/synthetic.py:bogus"], r"unknown variant\(s\) \['bogus'\]"),
    (["--config", "configs/synthetic.py", "--config.nofield=3"], r"config has no field 'nofield'"),
    (
      ["--config", "configs/synthetic.py", "--config.noise.alpah=1.1"],
      r"no field 'noise.alpah' \(did you mean 'noise.alpha'\?\)",
    ),
    (
      ["--config", "configs/synthetic.py", "--config.nosie.alpha=1.1"],
      r"no field 'nosie' .*\(did you mean 'noise'\?\)",
    ),
    (
      ["--config", "configs/synthetic.py", "--config.hparams.inner_lr=fast"],
      r"config.hparams.inner_lr='fast' has the wrong type",
    ),
    (["--config", "configs/synthetic.py", "--config.clients=0"], r"config.clients=0 must be >= 1"),
    (["--config", "configs/synthetic.py"], None),  # no --workdir: argparse, one line
  ],
)
def test_each_user_error_is_one_line_exit_2(tmp_path, capsys, argv, expect):
  if expect is None:
    with pytest.raises(SystemExit) as e:
      main_lib.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--workdir" in err[0]
    return
  rc, err = _main(capsys, *argv, "--workdir", str(tmp_path / "w"))
  assert rc == 2 and len(err) == 1 and err[0].startswith("error: "), err
  import re

  assert re.search(expect, err[0]), err


def test_help_is_fast_and_shows_the_override_syntax():
  """``--help`` imports neither jax nor tailopt, and shows --config.<field>=<value> with
  an example."""
  code = (
    "import sys\nfrom experiments import main\ntry:\n  main.main(['--help'])\n"
    "except SystemExit:\n  pass\nprint('HEAVY', sorted(m for m in ('jax', 'tailopt', "
    "'numpy') if m in sys.modules))"
  )
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
  assert out.returncode == 0, out.stderr
  assert "HEAVY []" in out.stdout, out.stdout[-300:]
  assert "--config.<field>=<value>" in out.stdout and "--config.method=bi2clip" in out.stdout


def test_unwritable_workdir_is_one_line(tmp_path, capsys):
  ro = tmp_path / "ro"
  ro.mkdir()
  ro.chmod(0o500)
  try:
    if os.access(ro, os.W_OK):
      pytest.skip("running as a user that can write anywhere")
    rc, err = _main(
      capsys, "--config", "configs/synthetic.py:runlocal", "--workdir", str(ro / "run")
    )
  finally:
    ro.chmod(0o700)
  assert rc == 2 and len(err) == 1 and "--workdir" in err[0]


def test_root_cannot_create_under_a_file_is_one_line(tmp_path, capsys):
  (tmp_path / "file").write_text("")
  rc, err = _main(
    capsys, "--config", "configs/synthetic.py:runlocal", "--workdir", str(tmp_path / "file" / "run")
  )
  assert rc == 2 and len(err) == 1 and "cannot be created" in err[0]


def test_bad_and_foreign_checkpoints_are_one_line(tmp_path, capsys):
  args = [
    "--config",
    "configs/synthetic.py:runlocal",
    "--config.rounds=4",
    "--config.checkpoint_every=2",
    "--config.progress=False",
    "--workdir",
    str(tmp_path),
  ]
  assert main_lib.main(args) == 0
  capsys.readouterr()
  os.remove(tmp_path / "summary.json")
  rc, err = _main(capsys, *args, "--config.method=fedavg")
  assert rc == 2 and len(err) == 1 and "different config" in err[0], err
  for root, _, files in os.walk(tmp_path / "checkpoints" / "4" / "state"):
    for f in files:
      with open(os.path.join(root, f), "wb") as fh:
        fh.write(b"garbage")
  rc, err = _main(capsys, *args)
  assert rc == 2 and len(err) == 1 and "cannot read checkpoint" in err[0], err
  rc, err = _main(capsys, *args, "--debug")
  assert rc == 2 and any("Traceback" in l for l in err)


def test_missing_artifact_is_one_line(tmp_path, capsys, monkeypatch):
  from experiments.data import fetch

  def offline(name, *a, **k):
    raise fetch.FetchError(f"no network for {name}\nsecond line")

  monkeypatch.setenv("TAILOPT_DATA_DIR", str(tmp_path / "cache"))
  monkeypatch.setattr(fetch, "fetch", offline)
  rc, err = _main(
    capsys, "--config", "configs/fashion_mnist.py:runlocal", "--workdir", str(tmp_path / "w")
  )
  errors = [l for l in err if l.startswith("error:")]  # after the "fetching" progress line
  assert rc == 2 and errors == err[-1:], err
  assert "fashion-mnist" in err[-1] and "python -m experiments.data.fetch" in err[-1]


def test_cli_error_process_has_no_traceback(tmp_path):
  out = subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.main",
      "--config",
      "configs/synthetic.py",
      "--workdir",
      str(tmp_path),
      "--config.hparams.inner_lr=nan",
      "--config.hparams.momentum=1.5",
      "--config.keep_checkpoints=0",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env=dict(os.environ, PYTHONPATH=ROOT),
  )
  assert out.returncode == 2 and "Traceback" not in out.stderr
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 3 and all(l.startswith("error: config.") for l in lines), lines

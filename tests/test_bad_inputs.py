"""Bad inputs of issue 22 that used to end in a traceback, run silently or swallow a signal:
each is now one ``error:`` line and a non-zero exit."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from experiments import main as main_lib
from experiments.metrics_log import MetricWriter

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SMALL = [
  "--config",
  "configs/synthetic.py:runlocal",
  "--config.rounds=4",
  "--config.eval_every=2",
  "--config.checkpoint_every=2",
  "--config.synthetic.dim=8",
  "--config.synthetic.examples_per_client=64",
  "--config.synthetic.test_examples=128",
  "--config.progress=False",
]


def _main(capsys, workdir, *argv):
  """``(exit status, stderr lines)`` of ``experiments.main`` run in this process."""
  rc = main_lib.main([*argv, "--workdir", str(workdir)])
  out = capsys.readouterr()
  return rc, out.err.strip().splitlines()


def _one_error(rc, err, *needles):
  assert rc == 2 and len(err) == 1 and err[0].startswith("error: "), (rc, err)
  for n in needles:
    assert n in err[0], err[0]


def test_more_fragments_than_parameter_leaves(tmp_path, capsys):
  rc, err = _main(capsys, tmp_path, *SMALL, "--config.fragments=5")
  _one_error(
    rc,
    err,
    "config.fragments=5 but the model of config.task='synthetic' has 2 parameter arrays",
    "--config.fragments=2 or fewer",
  )


def test_error_feedback_without_compression_is_refused(tmp_path, capsys):
  rc, err = _main(capsys, tmp_path, *SMALL, "--config.compression.error_feedback=True")
  _one_error(rc, err, "config.compression.error_feedback=True", "kind='none'")
  assert not (tmp_path / "metrics.jsonl").exists()


def test_get_config_that_raises_keyerror(tmp_path, capsys):
  path = tmp_path / "broken.py"
  path.write_text("def get_config(variant=''):\n  return {}['missing']\n")
  rc, err = _main(capsys, tmp_path / "run", "--config", str(path))
  _one_error(rc, err, f"config file {path}: get_config() failed with KeyError: 'missing'")


def _finished_run(capsys, workdir, *extra):
  assert main_lib.main([*SMALL, *extra, "--workdir", str(workdir)]) == 0
  capsys.readouterr()
  os.remove(workdir / "summary.json")  # as if killed after the last checkpoint


def test_client_store_record_missing_a_field(tmp_path, capsys):
  store = ["--config.data_clients=16"]  # sampled clients: a host-side store of inner states
  _finished_run(capsys, tmp_path, *store)
  record = tmp_path / "checkpoints" / "4" / "record" / "metadata"
  r = json.loads(record.read_text())
  del r["stored_clients"]
  record.write_text(json.dumps(r))
  rc, err = _main(capsys, tmp_path, *SMALL, *store)
  _one_error(
    rc,
    err,
    f"checkpoint record {record} has no field 'stored_clients'",
    f"delete the folder {tmp_path / 'checkpoints' / '4'} to fall back",
  )


def test_state_of_another_run_is_refused(tmp_path, capsys):
  # Same config, another seed: the record is this run's, the state folder the other's.
  _finished_run(capsys, tmp_path / "a")
  _finished_run(capsys, tmp_path / "b", "--config.seed=1")
  state = tmp_path / "a" / "checkpoints" / "4" / "state"
  os.rename(state, tmp_path / "a_state")
  os.rename(tmp_path / "b" / "checkpoints" / "4" / "state", state)
  rc, err = _main(capsys, tmp_path / "a", *SMALL)
  _one_error(rc, err, f"checkpoint {state.parent}: its state folder belongs to another run")
  # Put back, the run resumes and finishes.
  os.rename(state, tmp_path / "b_state")
  os.rename(tmp_path / "a_state", state)
  rc, err = _main(capsys, tmp_path / "a", *SMALL)
  assert rc == 0 and json.load(open(tmp_path / "a" / "summary.json"))["resumed_from"] == 4


def test_disk_full_while_writing_metrics(tmp_path, capsys, monkeypatch):
  real = MetricWriter._append

  def full_from_round_3(self, line):
    if json.loads(line)["round"] >= 3:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    real(self, line)

  monkeypatch.setattr(MetricWriter, "_append", full_from_round_3)
  rc, err = _main(capsys, tmp_path, *SMALL)
  _one_error(
    rc,
    err,
    f"disk full while writing {tmp_path / 'metrics.jsonl'} (No space left on device)",
    "rerun the same command",
  )
  monkeypatch.setattr(MetricWriter, "_append", real)  # space freed: the run resumes
  rc, err = _main(capsys, tmp_path, *SMALL)
  assert rc == 0, err
  assert json.load(open(tmp_path / "summary.json"))["resumed_from"] == 2


def _wait_for_start_up_handlers(p: subprocess.Popen) -> None:
  """Until main's start-up handlers are installed: SIGTERM shows in the process's caught
  signals (``SigCgt`` in /proc; Python catches only SIGINT on its own). main installs them
  before importing jax, so a signal sent now lands in start-up, however fast the machine
  (a fixed sleep let a fast machine reach round 2 first)."""
  bit = 1 << (signal.SIGTERM - 1)
  deadline = time.monotonic() + 60
  while time.monotonic() < deadline and p.poll() is None:
    try:
      with open(f"/proc/{p.pid}/status") as f:
        caught = next(int(l.split()[1], 16) for l in f if l.startswith("SigCgt:"))
    except (OSError, StopIteration):
      caught = 0
    if caught & bit:
      return
    time.sleep(0.001)
  raise AssertionError("experiments.main never installed its start-up signal handlers")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_start_up_is_one_line(tmp_path, sig):
  p = subprocess.Popen(
    [sys.executable, "-m", "experiments.main", *SMALL, "--workdir", str(tmp_path / "run")],
    cwd=ROOT,
    env=dict(os.environ, PYTHONPATH=ROOT),
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  _wait_for_start_up_handlers(p)
  p.send_signal(sig)
  out, err = p.communicate(timeout=120)
  name = signal.Signals(sig).name
  assert p.returncode == 128 + sig, (p.returncode, err[-2000:])
  assert err.strip().splitlines() == [
    f"error: {name} during start-up, before training began; nothing was trained or "
    "checkpointed: rerun the same command to start."
  ]
  assert out == "" and not (tmp_path / "run" / "metrics.jsonl").exists()

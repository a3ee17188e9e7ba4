"""tailbench: its scores against hand computations, the user's rule in one command (a tiny
suite end to end, the row in the leaderboard), and one-line errors for a bad rule file."""

import json
import math
import os

import pytest

from experiments import optax_rules
from experiments.errors import UserError
from experiments.tailbench import cli as tb_cli
from experiments.tailbench import scores


# ----------------------------------------------------------------- scores by hand
def test_auc_is_the_trapezoid_mean_level():
  # (10, 4), (20, 2), (40, 1): areas 10 * 3 + 20 * 1.5 = 60 over 30 rounds -> 2.
  assert scores.auc([(20, 2.0), (10, 4.0), (40, 1.0)]) == pytest.approx(2.0)
  assert scores.auc([(5, 3.0)]) == 3.0
  assert scores.auc([(10, 1.0), (20, math.inf)]) is None
  assert scores.auc([]) is None


def test_diverged_fraction():
  assert scores.diverged_fraction([1.0, None, math.nan, 2.0, math.inf]) == pytest.approx(0.6)
  assert scores.diverged_fraction([0.5, 0.25]) == 0.0
  assert math.isnan(scores.diverged_fraction([]))


def test_normalised_quality_min_and_max_metrics():
  # best = 2 (loss): seeds 2 -> 1, 4 -> 0.5, 1.6 -> min(1, 1.25) = 1, diverged -> 0: 0.625.
  assert scores.normalised_quality([2.0, 4.0, 1.6, None], 2.0, "min") == pytest.approx(0.625)
  # best = 0.8 (accuracy): 0.8 -> 1, 0.4 -> 0.5, 0.9 -> 1, inf-diverged -> 0: 0.625.
  assert scores.normalised_quality([0.8, 0.4, 0.9, math.inf], 0.8, "max") == pytest.approx(0.625)
  with pytest.raises(ValueError, match="best"):
    scores.normalised_quality([1.0], 0.0, "min")


def test_best_mean_robustness_and_overall():
  finals = {"a": [1.0, 3.0, None], "b": [4.0, 4.0], "c": [None]}
  assert scores.best_mean(finals, "min") == 2.0  # a's finite mean
  assert scores.best_mean(finals, "max") == 4.0
  assert scores.robustness({"stable1.1": 0.4, "stable1.5": 0.9, "stable2": 1.0}) == 0.4
  assert scores.overall_robustness({"ls": 0.4, "logistic": 0.8}) == pytest.approx(0.6)


# ----------------------------------------------------------------- user rules: errors
def _write(tmp_path, text, name="my_opt.py"):
  path = tmp_path / name
  path.write_text(text)
  return str(path)


def test_user_rule_errors_are_one_line(tmp_path):
  missing = str(tmp_path / "nope.py")
  with pytest.raises(UserError, match="does not exist"):
    optax_rules.resolve(f"{missing}:make", "--optimizer")
  with pytest.raises(UserError, match="FILE.py:FUNCTION"):
    optax_rules.resolve("my_opt.py", "--optimizer")
  no_fn = _write(tmp_path, "import optax\n")
  with pytest.raises(UserError, match="has no function 'make'"):
    optax_rules.resolve(f"{no_fn}:make", "--optimizer")
  broken = _write(tmp_path, "import no_such_module_xyz\n", "broken.py")
  with pytest.raises(UserError, match="failed to import"):
    optax_rules.resolve(f"{broken}:make", "--optimizer")
  not_tx = _write(tmp_path, "def make(learning_rate):\n  return learning_rate\n", "bad.py")
  factory = optax_rules.resolve(f"{not_tx}:make", "--optimizer")
  with pytest.raises(UserError, match="returned float, not an optax.GradientTransformation"):
    optax_rules.build(factory, 0.1, "--optimizer")


@pytest.mark.parametrize(
  "text,args,expect",
  [
    (None, ["--optimizer", "MISSING:make", "--name", "mine"], "does not exist"),
    ("import optax\n", ["--optimizer", "FILE:make", "--name", "mine"], "no function 'make'"),
    (
      "def make(learning_rate):\n  return 3\n",
      ["--optimizer", "FILE:make", "--name", "m"],
      "not an optax",
    ),
    ("import optax\nmake = optax.sgd\n", ["--optimizer", "FILE:make"], "need --name"),
    ("import optax\nmake = optax.sgd\n", ["--optimizer", "FILE:make", "--name", "fedavg"], "taken"),
    (None, ["--methods", "fedavg,nosuch"], "unknown ['nosuch']"),
    (None, ["--tasks", "mlp"], "not in suite tiny"),
    (None, ["--noises", "stable1.3"], "not among the tasks' noise laws"),
    (None, ["--report-only"], "no finished tailbench study"),
  ],
)
def test_cli_user_errors_exit_2_with_one_line(tmp_path, capsys, text, args, expect):
  path = _write(tmp_path, text) if text is not None else str(tmp_path / "missing.py")
  args = [a.replace("FILE", path).replace("MISSING", str(tmp_path / "missing.py")) for a in args]
  code = tb_cli.main(["--suite", "tiny", "--workdir", str(tmp_path / "run"), *args])
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and expect in err[0], err
  assert not os.path.exists(tmp_path / "run" / "least_squares")  # nothing ran


def test_optax_rules_replace_the_inner_rule_at_inner_lr():
  import jax.numpy as jnp
  import tailopt

  rules = {"inner": "sign_sgd", "outer": ""}
  m = optax_rules.apply(tailopt.get_method("avg-sgd", inner_lr=0.5), rules, {"inner_lr": 0.5})
  u, _ = m.inner.update({"w": jnp.array([3.0, -0.2])}, m.inner.init({"w": jnp.zeros(2)}))
  assert u["w"].tolist() == [-0.5, 0.5]  # -lr * sign(g)
  assert m.inner_rule is None and "sign_sgd" in m.name


# ----------------------------------------------------------------- end to end (tiny suite)
@pytest.mark.slow  # 50 s: the default suite keeps the tailbench units; CI runs this and smoke
def test_tiny_suite_ranks_a_user_optimizer(tmp_path, capsys):
  path = _write(
    tmp_path,
    "import optax\n\ndef make(learning_rate):\n"
    "  return optax.chain(optax.clip(1.0), optax.sgd(learning_rate))\n",
  )
  run = tmp_path / "run"
  argv = ["--suite", "tiny", "--workdir", str(run), "--methods", "fedavg"]
  argv += ["--optimizer", f"{path}:make", "--name", "mine"]
  assert tb_cli.main(argv) == 0
  board = json.load(open(run / "leaderboard.json"))
  assert {r["method"] for r in board["ranking"]} == {"fedavg", "mine"}
  mine = next(r for r in board["ranking"] if r["method"] == "mine")
  assert 0 < mine["robustness"] <= 1 and 0 < mine["mean_nq"] <= 1
  assert mine["seeds"] == 10 and 0 <= mine["diverged"] <= 1  # 2 noise laws x 5 seeds
  assert mine["bytes_per_round_x_params"] == pytest.approx(2.0)  # fp32 up + down
  cells = [c for c in board["cells"] if c["method"] == "mine"]
  assert {c["noise"] for c in cells} == {"stable1.1", "stable2"}
  for c in cells:
    assert c["final"]["n"] + c["final"]["diverged"] == 5
    assert c["kept"] == {"hparams.inner_lr": 0.01}
  assert {t["noise"] for t in board["tail_index"]} == {"stable1.1", "stable2"}
  assert "| mine |" in open(run / "leaderboard.md").read()
  for png in ("quality_vs_alpha.png", "curves_least_squares.png"):
    assert os.path.getsize(run / png) > 0
  os.remove(run / "leaderboard.md")
  assert tb_cli.main(argv + ["--report-only"]) == 0  # from the stored studies, runs nothing
  assert "| mine |" in open(run / "leaderboard.md").read()
  # --export: a results folder with every per-seed run, which the study check reads.
  out = tmp_path / "results"
  assert tb_cli.main(argv + ["--report-only", "--export", str(out)]) == 0
  assert json.load(open(out / "leaderboard.json"))["ranking"] == board["ranking"]
  study = out / "least_squares" / "stable1.1"
  for seed in range(1, 6):
    assert (study / "mine" / "inner_lr=0.01" / f"seed{seed}" / "summary.json").exists()
  assert (study / "tail_index.json").exists() and (study / "costs.json").exists()
  from experiments import study_check

  problems = [p for p in study_check.check(str(out)) if ": code:" not in p]
  assert problems == []  # (a test checkout may have local edits: the code line is skipped)
  # An edited rule file makes the stored runs stale: one-line error, before any run.
  with open(path, "a") as f:
    f.write("# edited\n")
  capsys.readouterr()
  assert tb_cli.main(argv) == 2
  assert "changed since its runs" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_suite_ranks_a_user_optimizer(tmp_path):
  """The issue's command: ``--suite smoke`` (2 tasks x 2 noise laws) with a user's rule file,
  exported as a results folder."""
  path = _write(
    tmp_path,
    "import optax\n\ndef make(learning_rate):\n"
    "  return optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(learning_rate))\n",
  )
  run, out = tmp_path / "run", tmp_path / "results"
  argv = ["--suite", "smoke", "--workdir", str(run), "--methods", "fedavg,bi2clip"]
  argv += ["--optimizer", f"{path}:make", "--name", "mine", "--export", str(out)]
  assert tb_cli.main(argv) == 0
  board = json.load(open(out / "leaderboard.json"))
  assert {r["method"] for r in board["ranking"]} == {"fedavg", "bi2clip", "mine"}
  cells = [c for c in board["cells"] if c["method"] == "mine"]
  assert {(c["task"], c["noise"]) for c in cells} == {
    (t, n) for t in ("least_squares", "logistic") for n in ("stable1.1", "stable2")
  }
  for c in cells:
    assert c["final"]["n"] + c["final"]["diverged"] == 5
    assert c["kept"]["hparams.inner_lr"] in (0.0003, 0.003, 0.03, 0.3)  # grid or extension
  assert "| mine |" in open(out / "leaderboard.md").read()
  from experiments import study_check

  # Every rule holds but two: a test checkout may have local edits (code), and the smoke
  # suite allows one extension past an edge, so a kept point may stay on one (edge).
  problems = study_check.check(str(out))
  assert [p for p in problems if ": code:" not in p and ": edge:" not in p] == []


@pytest.mark.slow
def test_tiny_suite_rerun_reads_finished_runs_back_and_workers_do_not_change_results(tmp_path):
  run = tmp_path / "run"
  argv = ["--suite", "tiny", "--methods", "fedavg,bi2clip"]  # (their numbers differ)
  assert tb_cli.main(argv + ["--workdir", str(run), "--workers", "2"]) == 0
  board = json.load(open(run / "leaderboard.json"))
  assert board["header"]["workers"] == 2
  stamp = os.path.getmtime(run / "least_squares" / "stable2" / "fedavg")
  assert tb_cli.main(argv + ["--workdir", str(run)]) == 0
  again = json.load(open(run / "leaderboard.json"))
  for key in ("ranking", "cells", "tail_index"):  # (as text: NaN != NaN)
    assert json.dumps(again[key], sort_keys=True) == json.dumps(board[key], sort_keys=True)
  assert os.path.getmtime(run / "least_squares" / "stable2" / "fedavg") == stamp
  # One process gives the same numbers as two worker processes (wall times aside).
  assert tb_cli.main(argv + ["--workdir", str(tmp_path / "one"), "--workers", "1"]) == 0
  one = json.load(open(tmp_path / "one" / "leaderboard.json"))

  def numbers(b):
    keys = ("task", "noise", "method", "kept", "edges", "finals", "final", "auc", "diverged")
    return json.dumps([{k: c[k] for k in keys} for c in b["cells"]], sort_keys=True)

  assert numbers(one) == numbers(board)
  assert json.dumps(one["tail_index"]) == json.dumps(board["tail_index"])


def test_optax_rules_default_keeps_fingerprints_and_a_bad_spec_is_a_config_problem():
  from configs.synthetic import get_config
  from experiments import validate
  from experiments.checkpoint import config_fingerprint

  c = get_config()
  d = c.to_dict()
  without = {k: v for k, v in d.items() if k != "optax_rules"}
  assert config_fingerprint(d) == config_fingerprint(without)  # earlier runs still resume
  c.optax_rules.inner = "lion"
  assert config_fingerprint(c.to_dict()) != config_fingerprint(d)
  c.optax_rules.inner = "nosuch"
  found = [p for p in validate.problems(c) if "optax_rules.inner" in p]
  assert len(found) == 1 and "FILE.py:FUNCTION" in found[0], found


def test_reference_table_sorts_significant_differences_by_direction():
  from experiments.tailbench import leaderboard

  def m(nq, diff=None, p=None):
    out = {"nq": nq, "final": {"n": 5, "mean": 1.0, "ci95": 0.1, "diverged": 0}}
    if diff is not None:
      out["vs_ref"] = {"diff": diff, "p": p}
    return out

  studies = {
    ("ls", "stable1.1"): {
      "mode": "min",
      "methods": {
        "bi2clip": m(0.8),
        "a": m(1.0, diff=-0.5, p=0.0004),  # lower loss, significant: better
        "b": m(0.5, diff=+0.5, p=0.01),  # higher loss, significant: worse
        "c": m(0.7, diff=+0.1, p=0.4),  # not significant
      },
    }
  }
  row = leaderboard.reference_table(studies).strip().splitlines()[-1]
  cells = [c.strip() for c in row.strip("|").split("|")]
  assert cells[3] == "2 of 4"
  assert cells[4] == "a (p < 0.001)" and cells[5] == "b (p = 0.010)"


def test_the_mlp_task_gets_its_smaller_noise_scale_and_the_leaderboard_says_so():
  from experiments.tailbench import bench, leaderboard
  from experiments.tailbench.suites import SUITES, stable

  for name in ("small", "full"):
    suite = SUITES[name]
    for label, task in suite.tasks.items():
      cfg = bench.base_config(suite, task, stable(1.5))
      want = 0.03 if label.startswith("mlp") else 1.0
      assert (cfg.noise.scale, cfg.noise.alpha) == (want, 1.5), (name, label)
  header = dict(
    suite="small",
    code="abc",
    rounds=40,
    lrs=[0.1],
    tune_seeds=[0],
    report_seeds=[1],
    tuned_on="stable1.5",
    wall_s=None,
    methods={},
    tasks={"mlp": {"config": "configs/synthetic.py:mlp", "noise.scale": 0.03}},
  )
  board = dict(studies={}, missing={}, ranking=[], layout={})
  text = leaderboard.markdown(board, header)
  assert "- `mlp`: `configs/synthetic.py:mlp` with noise.scale=0.03" in text


def test_a_learning_rate_kept_at_the_suites_ceiling_is_a_declared_bound():
  from experiments import sweep
  from experiments.tailbench import bench
  from experiments.tailbench.suites import SUITES, stable

  suite = SUITES["small"]
  cfg = bench.base_config(suite, suite.tasks["logistic"], stable(1.5))
  bounds = sweep._bounds(cfg.sweep.bounds)
  assert bounds == {"hparams.inner_lr": [None, suite.lr_bound]}
  axis = [0.001, 0.01, 0.1]
  cells = {str(lr): {"point": {"hparams.inner_lr": lr}, "score": -lr} for lr in (0.1, 1.0, 10.0)}
  best = {"hparams.inner_lr": 10.0}
  status = sweep._edge_status(cells, best, "hparams.inner_lr", "high", bounds, axis)
  assert status == "declared bound"
  assert sweep._edge_status(cells, best, "hparams.inner_lr", "high", {}, axis) == "open"


def test_a_task_without_the_suites_tuning_law_tunes_on_its_own_and_workers_resolve():
  from experiments.tailbench import bench
  from experiments.tailbench.suites import SUITES, stable

  full = SUITES["full"]
  assert bench.tune_noise(full, full.tasks["least_squares"]) == stable(1.5)
  assert bench.tune_noise(full, full.tasks["gutenberg8"]) is None  # natural noise only
  assert bench.tune_noise(SUITES["smoke"], SUITES["smoke"].tasks["logistic"]) is None
  assert bench.resolve_workers(3) == 3
  assert 1 <= bench.resolve_workers(0) <= 8  # one per core on this CPU backend
  assert bench.worker_pool(1) is None


def test_no_alpha_plot_without_a_stable_noise_law(tmp_path):
  from experiments.tailbench import plots

  study = {"sweep": {"config": {"noise": {"distribution": "none"}}}, "methods": {}}
  board = {"layout": {"gutenberg8": ["natural"]}, "studies": {("gutenberg8", "natural"): study}}
  path = tmp_path / "quality_vs_alpha.png"
  assert plots.quality_vs_alpha(board, str(path)) is False and not path.exists()
  study["sweep"]["config"]["noise"] = {"distribution": "stable", "alpha": 1.5}
  study["metric"] = "eval/loss"
  study["methods"] = {"fedavg": {"final": {"mean": 0.5, "ci95": 0.1}}}
  assert plots.quality_vs_alpha(board, str(path)) is True and path.stat().st_size > 0


@pytest.mark.slow
def test_workers_end_when_the_parent_is_killed(tmp_path):
  """A killed ``python -m experiments.tailbench`` leaves no worker computing behind it."""
  import signal
  import subprocess
  import sys
  import time

  pids = tmp_path / "pids"
  code = (
    "import os, time\n"
    "from experiments.tailbench import bench\n"
    "pool = bench.worker_pool(2)\n"
    "futs = [pool.submit(time.sleep, 600) for _ in range(2)]\n"
    "time.sleep(1)\n"
    f"open({str(pids)!r}, 'w').write(' '.join(str(p) for p in pool._processes))\n"
    "time.sleep(600)\n"
  )
  parent = subprocess.Popen([sys.executable, "-c", code], cwd=os.getcwd())
  for _ in range(120):
    if pids.exists() and pids.read_text():
      break
    time.sleep(0.5)
  workers = [int(p) for p in pids.read_text().split()]
  assert len(workers) == 2
  parent.send_signal(signal.SIGKILL)
  parent.wait()

  def alive(pid):
    try:
      os.kill(pid, 0)
    except ProcessLookupError:
      return False
    return open(f"/proc/{pid}/stat").read().split()[2] != "Z"  # (a zombie has ended)

  deadline = time.time() + 20
  while any(alive(p) for p in workers) and time.time() < deadline:
    time.sleep(0.2)
  assert not any(alive(p) for p in workers)

"""Synthetic heavy-tailed regression/classification (the README's main job).

    python -m experiments.main --config configs/synthetic.py --workdir /tmp/synth
    python -m experiments.main --config configs/synthetic.py:runlocal --workdir /tmp/s
    python -m experiments.main --config configs/synthetic.py --workdir /tmp/s \\
        --config.method=fedavg --config.noise.alpha=1.1

Variants (after the colon): ``runlocal`` (seconds), ``logistic``, ``mlp``, ``study`` (the
committed synthetic study: 150 rounds, one device, the tuning grids below), ``comm`` (the
communication study), ``wallclock`` (the wall-clock study's clock and run length, see
:func:`wallclock`); combine with commas, e.g. ``configs/synthetic.py:mlp,runlocal``.
"""

from ml_collections import config_dict

import tailopt

from configs.common import balanced_step_time, base_config, comm_settings

STUDY_METHODS = [
  "fedavg",
  "avg-l2clip",
  "avg-biclip",
  "adam-sgd",
  "adam-biclip",
  "adam2",
  "diloco",
  "bi2clip",
]


def get_config(arg: str = "") -> config_dict.ConfigDict:
  variants = set(filter(None, (arg or "").split(",")))
  known = {"runlocal", "logistic", "mlp", "least_squares", "study", "comm", "wallclock"}
  unknown = variants - known
  if unknown:
    raise ValueError(
      f"unknown variant(s) {sorted(unknown)} of configs/synthetic.py; use "
      "runlocal, study, comm, wallclock, least_squares, logistic or mlp."
    )
  c = base_config()
  c.task = "synthetic"
  c.synthetic = config_dict.ConfigDict(
    {
      "task": "least_squares",
      "dim": 50,
      "examples_per_client": 1024,
      "test_examples": 4096,
      "partition": "shift",
      "heterogeneity": 1.0,
      "dirichlet_beta": 0.3,
      "num_classes": 10,
      "hidden": 64,
      "label_noise": 0.1,
    }
  )
  c.noise.distribution = "stable"
  c.noise.alpha = 1.5
  c.noise.scale = 1.0
  c.method = "bi2clip"
  # Every study method's tuned point (experiments/results/synthetic/stable_alpha1.5), so
  # --config.method=fedavg runs at fedavg's own best setting, not Bi²Clip's.
  c.tuned = {m: study_point(m, **best) for m, best in TUNED.items()}
  c.clients = 8
  c.local_steps = 5
  c.batch_size = 16
  c.rounds = 300
  c.eval_every = 25
  c.checkpoint_every = 100
  c.report_metric = "eval/loss"
  c.report_mode = "min"
  for task in ("logistic", "mlp", "least_squares"):
    if task in variants:
      c.synthetic.task = task
  if c.synthetic.task != "least_squares":
    c.report_metric, c.report_mode = "eval/accuracy", "max"
  if c.synthetic.task == "mlp":
    c.synthetic.partition = "dirichlet"
  if "runlocal" in variants:
    c.rounds = 40
    c.eval_every = 10
    c.checkpoint_every = 20
    c.synthetic.examples_per_client = 256
    c.synthetic.test_examples = 1024
  c.sweep.methods = STUDY_METHODS
  c.sweep.grids = STUDY_GRIDS
  if "study" in variants:
    # Tuned at 150 rounds on seed 0, reported on seeds 1-5 for 600 rounds, quality read at
    # 100, 150, 300 and 600 rounds (experiments.sweep's rules).
    c.rounds = 150
    c.eval_every = 10
    c.checkpoint_every = 0
    c.devices = 1  # 8 clients vmapped on one device: same numbers, less sync on 2 cores
    c.tuned = {m: study_point(m) for m in STUDY_METHODS}  # the grids tune from the base
    c.sweep.report_rounds = 600
    c.sweep.budgets = [100, 150, 300, 600]
  if "comm" in variants:
    # The communication study (experiments/results/communication): each method's inner lr
    # tuned uncompressed (float32 payloads, 32 bits) on seed 0 around its synthetic-study
    # point (its other fields held there), then reported on seeds 1-5 at every bit width,
    # with and without error feedback (experiments.sweep rule 4), Bi2Clip also with its
    # fixed-range grid (no scales sent).
    c.rounds, c.eval_every, c.checkpoint_every = 100, 20, 0
    c.devices = 1
    c.compression.kind, c.compression.block, c.compression.bits = "int", 64, 32
    c.sweep.methods = ["fedavg", "diloco", "adam2", "bi2clip"]
    ladder = [k * 10.0**e for e in range(-6, 1) for k in (1, 3)]  # 1e-6, 3e-6, ..., 3
    c.sweep.grids = {}
    for m in c.sweep.methods:
      i = min(range(len(ladder)), key=lambda j: abs(ladder[j] - TUNED[m]["inner_lr"]))
      c.sweep.grids[m] = ["hparams.inner_lr=" + ",".join(f"{v:g}" for v in ladder[i - 1 : i + 2])]
    c.sweep.settings = comm_settings(bits=(8, 4, 2), fixed_for="bi2clip")
  if "wallclock" in variants:
    wallclock(c)
  return c


def wallclock(c) -> None:
  """The wall-clock study's setting (experiments/results/wallclock, experiments.wallclock):
  the study's task at its tuned points, 100-round tuning runs evaluated every 5 rounds on
  one device, and a clock whose fast worker computes a round in the time the float32 model
  (dim + 1 parameters) takes to go up and down a 1 Gb/s link (the tuning bandwidth).
  Stragglers and job noise are the shared clock's defaults (a quarter of the workers 4x
  slower, log-normal noise 0.25)."""
  c.rounds, c.eval_every, c.checkpoint_every = 100, 5, 0
  c.devices = 1
  c.clock.base_step_time = balanced_step_time(c.synthetic.dim + 1, c.local_steps)
  c.network.bandwidth_gbps = 1.0


# Tuning grids of the synthetic study (our choice: 8-20 points per method, the learning
# rates that matter most for each; thresholds not in a grid keep the config's values:
# inner u=1, d=0.01; outer u~=0.5, d~=0).
STUDY_GRIDS = {
  "fedavg": ["hparams.inner_lr=0.00003,0.0001,0.0003,0.001,0.003,0.01,0.03,0.1"],
  "avg-l2clip": ["hparams.inner_lr=0.003,0.01,0.03,0.1", "hparams.inner_upper=1.0,3.0"],
  "avg-biclip": ["hparams.inner_lr=0.003,0.01,0.03,0.1", "hparams.inner_upper=0.1,0.3,1.0"],
  "adam-sgd": ["hparams.inner_lr=0.001,0.003,0.01,0.03", "hparams.outer_lr=0.01,0.03,0.1"],
  "adam-biclip": ["hparams.inner_lr=0.001,0.003,0.01,0.03,0.1", "hparams.outer_lr=0.003,0.01,0.03"],
  "adam2": ["hparams.inner_lr=0.0001,0.0003,0.001,0.003,0.01", "hparams.outer_lr=0.003,0.01,0.03"],
  "diloco": ["hparams.inner_lr=0.0003,0.001,0.003,0.01", "hparams.outer_lr=0.3,0.7"],
  "bi2clip": [
    "hparams.inner_lr=0.001,0.003,0.01,0.03,0.1",
    "hparams.outer_upper=0.01,0.03,0.1,0.5",
  ],
}


# The study's base: thresholds not in a method's grid (used where the method has them).
STUDY_BASE = dict(inner_upper=1.0, inner_lower=0.01, outer_lr=1.0, outer_upper=0.5, outer_lower=0.0)
# The best setting of each method at alpha = 1.5 (results.json, 'best_setting').
TUNED = {
  "fedavg": dict(inner_lr=0.001),
  "avg-l2clip": dict(inner_lr=0.01, inner_upper=3.0),
  "avg-biclip": dict(inner_lr=0.01, inner_upper=0.3),
  "adam-sgd": dict(inner_lr=0.001, outer_lr=0.01),
  "adam-biclip": dict(inner_lr=0.01, outer_lr=0.003),
  "adam2": dict(inner_lr=0.001, outer_lr=0.01),
  "diloco": dict(inner_lr=0.001, outer_lr=0.7),
  "bi2clip": dict(inner_lr=0.003, outer_upper=0.01),
}


def study_point(method: str, **best) -> dict:
  """The study's base values that ``method`` uses, updated with ``best``."""
  used = tailopt.method_hyperparameters(method)
  point = {k: v for k, v in STUDY_BASE.items() if k in used}
  point.update(best)
  return point

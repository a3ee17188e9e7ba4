"""The wall-clock study's table: tasks, arms (method + fixed config fields + tuning grid),
bandwidths, targets, seeds and run lengths. Pure data and small helpers (no jax).

An *arm* is one way to train: a method of tailopt's registry with fixed config fields (a
code, streaming fragments, an overlap) and a tuning grid, run by the synchronous engine, or
asynchronous Bi²Clip (``mode='async'``: buffered, K = N/2, the same task and clock). Every
arm is tuned on seed 0 at the tuning bandwidth under the rules of :mod:`experiments.sweep`
(:func:`experiments.sweep.tune_grid`: a kept point on a grid edge extends its axis) and its
kept point reported on seeds 1-5 at every bandwidth.

A synchronous run's numbers do not depend on the links, only its ``sim_time`` does
(:mod:`experiments.retime`), so each synchronous report run is made once, at the tuning
bandwidth, and retimed to the others; an asynchronous run's event order depends on the
links, so it runs at every bandwidth. Asynchronous runs last twice as many server steps as
the synchronous runs have rounds: with K = N/2 that is the same number of client jobs.
"""

from __future__ import annotations

import dataclasses

from experiments.async_study.study import grid_points  # noqa: F401 (one implementation)

BANDWIDTHS = (0.1, 1.0, 10.0, 100.0)  # Gb/s of every link, both directions
TUNE_BANDWIDTH = 1.0  # where the grids are tuned and the synchronous runs are made
TUNE_SEEDS = (0,)
REPORT_SEEDS = (1, 2, 3, 4, 5)

# The codes of the compressed Bi²Clip arms: 4-bit values in blocks of 64 coordinates with
# error feedback (the setting that cost nothing in experiments/results/communication), the
# broadcast as 4-bit block-64 integers; top-k keeps 8 of every 64 coordinates (12.5%) with
# their indices, as SparseLoCo.
_CODE = {
  "compression.bits": 4,
  "compression.block": 64,
  "compression.error_feedback": True,
  "compression.down": "int",
}
CODES = {
  "int4": {"compression.kind": "int", **_CODE},
  "fixed": {"compression.kind": "fixed", **_CODE},
  "topk": {"compression.kind": "topk", "compression.topk": 8, **_CODE},
}
# Streaming: 2 fragments (both tasks' trained parameters are two arrays: a weight and a
# bias; a fragment is whole arrays); with overlap the synced fragment is merged one inner
# step into the next round, half global, half local (Streaming DiLoCo's alpha = 0.5).
STREAMING = {"fragments": 2}
OVERLAP = {"fragments": 2, "overlap.delay": 1, "overlap.alpha": 0.5}


@dataclasses.dataclass(frozen=True)
class Arm:
  """``method`` (tailopt's registry) with the fixed config ``fields``, tuned over ``grid``
  ({field: values}); ``mode`` 'sync' or 'async'."""

  method: str
  grid: dict
  fields: dict = dataclasses.field(default_factory=dict)
  mode: str = "sync"


def arms(lrs_fedavg, lrs_diloco, lrs_bi2clip, lrs_async, outer_upper, async_upper) -> dict:
  """The study's nine arms with their learning-rate lines (the second Bi²Clip threshold
  fixed at the task's tuned ``outer_upper``; asynchronous Bi²Clip at ``async_upper``)."""
  lr = "hparams.inner_lr"
  bi = {lr: list(lrs_bi2clip)}
  fix = {"hparams.outer_upper": outer_upper}
  out = {
    "fedavg": Arm("fedavg", {lr: list(lrs_fedavg)}),
    "diloco": Arm("diloco", {lr: list(lrs_diloco)}),
    "bi2clip": Arm("bi2clip", bi, dict(fix)),
  }
  for name, code in CODES.items():
    out[f"bi2clip-{name}"] = Arm("bi2clip", bi, {**fix, **code})
  out["streaming"] = Arm("bi2clip", bi, {**fix, **STREAMING})
  out["streaming-overlap"] = Arm("bi2clip", bi, {**fix, **OVERLAP})
  out["async-bi2clip"] = Arm(
    "bi2clip", {lr: list(lrs_async)}, {"hparams.outer_upper": async_upper}, mode="async"
  )
  return out


@dataclasses.dataclass(frozen=True)
class Task:
  """One study: ``config`` (``configs/<x>.py:<variant>``, the synchronous runs; the
  asynchronous arm's config is made from it), the arms, the report metric's targets
  (time to each is the study's question), the run lengths in rounds and the budgets."""

  name: str
  config: str
  arms: dict
  targets: tuple
  tune_rounds: int
  report_rounds: int
  budgets: tuple
  bandwidths: tuple = BANDWIDTHS
  tune_bandwidth: float = TUNE_BANDWIDTH
  tune_seeds: tuple = TUNE_SEEDS
  report_seeds: tuple = REPORT_SEEDS
  reference: str = "bi2clip"
  max_extensions: int = 4
  title: str = ""

  def __post_init__(self):
    where = f"experiments/wallclock/study.py task {self.name!r}:"
    if self.tune_bandwidth not in self.bandwidths:
      raise ValueError(f"{where} tune_bandwidth {self.tune_bandwidth} is not in {self.bandwidths}")
    if self.reference not in self.arms:
      raise ValueError(f"{where} reference {self.reference!r} is not an arm")
    bad = [m for m, a in self.arms.items() if a.mode not in ("sync", "async")]
    if bad:
      raise ValueError(f"{where} arms {bad} have a mode other than 'sync' or 'async'")

  def check_seeds(self):
    from experiments import sweep

    sweep.check_seeds(self.tune_seeds, self.report_seeds, where=f"task {self.name!r}")

  def length(self, arm: str, phase: str) -> int:
    """An arm's run length in its unit: rounds, or server steps (twice the rounds: K = N/2
    of N clients per step) for the asynchronous arm; ``phase`` 'tune' or 'report'."""
    rounds = self.tune_rounds if phase == "tune" else self.report_rounds
    return 2 * rounds if self.arms[arm].mode == "async" else rounds


def setting(bandwidth: float) -> str:
  """The name of a bandwidth's setting in the study (``'0.1Gbps'``)."""
  return f"{float(bandwidth):g}Gbps"


_LRS = (0.001, 0.003, 0.01)
SYNTHETIC = Task(
  name="synthetic",
  config="configs/synthetic.py:wallclock",
  # Centred on the synthetic study's tuned points (configs/synthetic.py TUNED): fedavg and
  # diloco at lr 0.001, bi2clip at 0.003 with u~ = 0.01; async Bi²Clip at the asynchronous
  # study's lr 0.01 (experiments/results/async) with u~ = 0.01.
  arms=arms((0.0003, 0.001, 0.003), (0.0003, 0.001, 0.003), _LRS, (0.003, 0.01, 0.03), 0.01, 0.01),
  # eval/loss (test MSE); the synthetic study's 150-round means at alpha 1.5 span 0.03-0.14.
  targets=(0.1, 0.05),
  tune_rounds=100,
  report_rounds=200,
  budgets=(50, 100, 200),
  title="Synthetic least squares, stable(1.5) gradient noise",
)
MOVIE_REVIEWS = Task(
  name="movie_reviews",
  config="configs/movie_reviews.py:wallclock",
  # Centred on the asynchronous movie-review study's kept points (same task): synchronous
  # Bi²Clip lr 0.1, u~ 0.01; asynchronous Bi²Clip A lr 0.3, u~ 0.3.
  arms=arms((0.03, 0.1, 0.3), (0.003, 0.01, 0.03), (0.03, 0.1, 0.3), (0.1, 0.3, 1.0), 0.01, 0.3),
  targets=(0.7, 0.75),  # eval/accuracy; the asynchronous study's runs ended at 0.75-0.79
  tune_rounds=100,
  report_rounds=200,
  budgets=(50, 100, 200),
  title="Movie reviews, MiniLM (trained head)",
)
# A smoke study of seconds (the runlocal least squares, three arms, two bandwidths): the
# whole pipeline, tune to --check, not a result.
TINY = Task(
  name="tiny",
  config="configs/synthetic.py:runlocal,wallclock",
  arms={
    "fedavg": Arm("fedavg", {"hparams.inner_lr": [0.003, 0.01]}),
    "bi2clip-int4": Arm("bi2clip", {"hparams.inner_lr": [0.01]}, {**CODES["int4"]}),
    "async-bi2clip": Arm("bi2clip", {"hparams.inner_lr": [0.01]}, mode="async"),
  },
  targets=(1.0, 0.5),
  tune_rounds=10,
  report_rounds=20,
  budgets=(10, 20),
  bandwidths=(0.1, 1.0),
  reference="fedavg",
  max_extensions=1,
  title="Smoke study (runlocal least squares)",
)
TASKS = {"tiny": TINY, "synthetic": SYNTHETIC, "movie_reviews": MOVIE_REVIEWS}


def task(name) -> Task:
  if isinstance(name, Task):
    return name
  if name not in TASKS:
    raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}.")
  return TASKS[name]

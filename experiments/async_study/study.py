"""The asynchronous studies' table: which claims, methods, grids, conditions, seeds and
budgets, per family. Pure data and small helpers (no jax).

A family is one study: a config (``configs/<config>.py:<base>``), its methods (name ->
(config variants, grid, heatmap column label)), its simulated-time budgets, the values of its
condition (a config field swept across the report: the straggler slowdown
``clock.straggler_slowdown`` by default, ``S1``/``S4``/``S16``; the failure rate
``clock.failure_rate`` in the failures study, ``F0``/``F0.0125``/...) and its claims. Every run is an ordinary run of the experiment loop; the study
runs under the study rules of :mod:`experiments.sweep` (:mod:`experiments.async_study.jobs`)
and writes the same ``sweep.json`` (:mod:`experiments.async_study.report`).

Synthetic (``experiments/results/async/``): least squares (d = 50, 8 clients, covariate-shift
split) with alpha-stable (1.5) gradient noise; N = 8 workers, 2 of them stragglers slowed S
in {1, 4, 16} times; log-normal job noise (sigma 0.25); z = 5 local steps of batch 16;
1 simulated second per local step of a fast worker. Methods (``METHODS``): synchronous FedAvg
and Bi²Clip (wait-for-all on the same clock), FedAsync, FedBuff (K = 4), DC-ASGD-c (z = 1),
async local SGD with Delayed Nesterov and dynamic local updates, and async Bi²Clip in scheme
A (buffered, K = 4) and B (K = 1), each with and without the delay-aware rate and adaptive
delay compensation.

Image and language (``experiments/results/async_real/``): the CNN on Fashion-MNIST and
MiniLM with a trained head on the movie-review sentences, scored by eval accuracy; methods
``_real_methods`` (synchronous Bi²Clip, the eight async Bi²Clip variants, FedBuff, FedAsync,
DC-ASGD) on grids that double as the robustness sweep.

Failures (``experiments/results/async_failures/``, families ``failures_synthetic`` and
``failures_movie_reviews``): the same two tasks with worker failures and rejoins instead of
stragglers (no straggler, S = 1): each worker is up for Exp(lambda) seconds, then down for
Exp(mu) seconds (a job running when it fails is lost); the condition is the failure rate
lambda, at mu fixed per family, so a worker is down lambda / (lambda + mu) of the time: 0, 5%,
20% and 50%. Methods: synchronous wait-for-all Bi²Clip (a lost job is redone, the round
waits), the quorum server (Bi²Clip; Q = N/2 updates and the adaptive grace window, or K = N),
FedBuff (K = 4) and buffered async Bi²Clip (scheme A, K = 4); quality and goodput (useful ÷
all local steps) against the failure rate.

Protocol (every family): each method's grid runs at the tuning severity on the tuning seeds
for ``budget`` simulated seconds, and a kept point on a grid edge extends its axis
(:func:`experiments.sweep.tune_grid`); the kept point then runs at every severity on fresh
report seeds for ``report_budget`` seconds (at least 5 seeds; a method a small-effect claim
rests on gets the claim's ``min_seeds``), read at several budgets.
"""

from __future__ import annotations

import dataclasses
import itertools

BUDGET = 700.0  # simulated seconds (tuning runs); the report runs are twice as long
EVAL_EVERY_TIME = 20.0  # simulated seconds
SEVERITIES = (1.0, 4.0, 16.0)
TUNE_SEVERITY = 4.0
TUNE_SEEDS = (0,)
REPORT_SEEDS = (1, 2, 3, 4, 5, 6, 7, 8)  # the pool: 5 per method, 8 for small effects
TARGETS = (0.1, 0.05, 0.03)  # eval/loss thresholds for the time-to-target table

BI_GRID = {"hparams.inner_lr": [0.001, 0.003, 0.01, 0.03], "hparams.outer_upper": [0.03, 0.1]}
LR4 = [0.0001, 0.0003, 0.001, 0.003]
# name -> (config variants of configs/async_synthetic.py, grid, heatmap axes or None)
METHODS = {
  "sync-fedavg": ("fedavg", {"hparams.inner_lr": [0.0003, 0.001, 0.003, 0.01]}, None),
  "sync-bi2clip": ("sync", BI_GRID, None),
  "fedasync": (
    "fedasync",
    {"hparams.inner_lr": [0.0003, 0.001, 0.003, 0.01], "hparams.outer_lr": [0.15, 0.3, 0.6, 0.9]},
    "alpha (mixing)",
  ),
  "fedbuff": (
    "fedbuff",
    {"hparams.inner_lr": [0.0003, 0.001, 0.003, 0.01], "hparams.outer_lr": [0.5, 1.0, 2.0]},
    "server lr",
  ),
  "dcasgd": ("dcasgd", {"hparams.outer_lr": LR4}, None),
  "delayed-nesterov": ("async_local_sgd", {"hparams.inner_lr": LR4}, None),
  "bi2clip-A": ("", BI_GRID, None),
  "bi2clip-A+rate": ("rate", BI_GRID, None),
  "bi2clip-A+comp": ("comp", BI_GRID, None),
  "bi2clip-A+rate+comp": (
    "rate,comp",
    {
      "hparams.inner_lr": [0.001, 0.003, 0.01, 0.03],
      "hparams.outer_upper": [0.003, 0.01, 0.03, 0.1],
    },
    "outer threshold u~",
  ),
  "bi2clip-B": ("scheme_b", BI_GRID, None),
  "bi2clip-B+rate": ("scheme_b,rate", BI_GRID, None),
  "bi2clip-B+comp": ("scheme_b,comp", BI_GRID, None),
  "bi2clip-B+rate+comp": ("scheme_b,rate,comp", BI_GRID, None),
}
BASELINES = ["sync-fedavg", "sync-bi2clip", "fedasync", "fedbuff", "dcasgd", "delayed-nesterov"]
BI2CLIP = [m for m in METHODS if m.startswith("bi2clip")]


@dataclasses.dataclass(frozen=True)
class Claim:
  """A comparison a claim rests on: ``a`` against ``b`` (Welch's test over the report seeds)
  at ``severities`` (empty: every severity), each method on at least ``min_seeds`` seeds."""

  name: str
  text: str
  a: str
  b: str
  severities: tuple = ()
  min_seeds: int = 0  # 0: the rules' minimum (experiments.sweep.MIN_REPORT_SEEDS)


def _claims() -> tuple:
  """Claim 3 of the asynchronous paper (our reading), split into the comparisons it rests
  on. 3b's effects are small, so its methods run on 8 seeds."""
  a, b, sync = "bi2clip-A", "bi2clip-B", "sync-bi2clip"
  return (
    Claim("3a", "async Bi²Clip (scheme A) beats synchronous Bi²Clip with stragglers", a, sync),
    Claim("3a-B", "async Bi²Clip (scheme B) beats synchronous Bi²Clip with stragglers", b, sync),
    Claim("3b-rate-A", "the delay-aware rate helps scheme A", f"{a}+rate", a, min_seeds=8),
    Claim("3b-comp-A", "delay compensation helps scheme A", f"{a}+comp", a, min_seeds=8),
    Claim("3b-rate-B", "the delay-aware rate helps scheme B", f"{b}+rate", b, min_seeds=8),
    Claim("3b-comp-B", "delay compensation helps scheme B", f"{b}+comp", b, min_seeds=8),
    Claim(
      "3c-fedbuff", "async Bi²Clip's tuned point beats FedBuff's (grids: Robustness)", a, "fedbuff"
    ),
    Claim("3c-fedasync", "async Bi²Clip's tuned point beats FedAsync's", a, "fedasync"),
  )


CLAIMS = _claims()


@dataclasses.dataclass(frozen=True)
class Family:
  """One study: a config, its methods and grids, the clock settings, claims and report."""

  name: str
  config: str  # module under configs/
  base: str  # config variants of every run
  methods: dict  # name -> (variants, grid, heatmap column label or None)
  budget: float  # simulated seconds of a tuning run
  eval_every_time: float  # simulated seconds
  severities: tuple  # the values of the condition (below; default the straggler slowdown)
  tune_severity: float  # the value the grids are tuned at
  metric: str  # 'eval/loss' (lower is better) or 'eval/accuracy' (higher)
  targets: tuple  # time-to-target thresholds of ``metric``
  out: str  # default report folder
  report_budget: float = 0.0  # simulated seconds of a report run (0: ``budget``)
  tune_seeds: tuple = TUNE_SEEDS
  report_seeds: tuple = REPORT_SEEDS  # the pool; a method runs on the first seeds_of(m)
  claims: tuple = CLAIMS
  reference: str = "sync-bi2clip"
  bounds: dict = dataclasses.field(default_factory=dict)  # method or '*' -> ['field=lo,hi']
  max_extensions: int = 4
  budgets: tuple = ()  # simulated seconds; empty: 25/50/100% of budget and report_budget
  baselines: tuple = ()
  bi2clip: tuple = ()
  chance: float = 0.0  # accuracy counted for a diverged cell in the robustness spread
  title: str = ""
  # Robustness on equal-shape sub-grids: (label, method, {axis: values}) each; the same
  # spread statistics as the full grids, over the cells of the sub-grid.
  matched: tuple = ()
  # The condition ``severities`` and ``tune_severity`` are values of: a config field set on
  # every run, the label of its settings (``S4``; run folders ``S4_seed1``), config fields
  # set on every run before it (e.g. ``{"clock.rejoin_rate": 0.05}``) and a note per value
  # shown beside its setting in the report (e.g. ``{0.0125: "20% of time down"}``).
  condition: str = "clock.straggler_slowdown"
  label: str = "S"
  fixed: dict = dataclasses.field(default_factory=dict)
  notes: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    where = f"experiments/async_study/study.py family {self.name!r}:"
    if self.tune_severity not in self.severities:
      raise ValueError(f"{where} tune_severity {self.tune_severity} is not in {self.severities}")
    if not self.label.isalpha() or not self.condition:
      raise ValueError(f"{where} give a condition field and a label of letters (e.g. 'S')")
    if not set(self.notes) <= set(self.severities):
      raise ValueError(f"{where} notes name values not in severities {self.severities}")
    if self.report_budget and self.report_budget < self.budget:
      raise ValueError(f"{where} report_budget {self.report_budget} is below budget {self.budget}")
    for c in self.claims:
      if c.a not in self.methods or c.b not in self.methods:
        raise ValueError(f"{where} claim {c.name} names a method the family does not run")
      if c.min_seeds > len(self.report_seeds):
        raise ValueError(f"{where} claim {c.name} needs {c.min_seeds} seeds; add report_seeds")
      if not set(c.severities) <= set(self.severities):
        raise ValueError(f"{where} claim {c.name} is at values not in {self.severities}")

  def setting(self, value) -> str:
    """The name of a value of the condition (``S4``, ``F0.0125``)."""
    return setting(value, self.label)

  @property
  def length(self) -> float:
    """Simulated seconds of a report run."""
    return self.report_budget or self.budget

  def check_seeds(self):
    """The seeds under the rules (:func:`experiments.sweep.check_seeds`), or a one-line
    ConfigError naming the family."""
    from experiments import sweep

    sweep.check_seeds(self.tune_seeds, self.report_seeds, where=f"family {self.name!r}")

  def seeds_of(self, method) -> tuple:
    """A method's report seeds: the rules' minimum (5), or more when a claim resting on it
    needs them."""
    from experiments import sweep

    need = [sweep.MIN_REPORT_SEEDS] + [c.min_seeds for c in self.claims if method in (c.a, c.b)]
    return tuple(self.report_seeds[: max(need)])

  def bounds_of(self, method) -> list:
    return list(self.bounds.get("*", [])) + list(self.bounds.get(method, []))

  def budget_points(self) -> list:
    """The budgets the report reads, in simulated seconds."""
    from experiments import sweep

    return sweep.resolve_budgets(
      self.budgets, self.budget, self.length, self.eval_every_time, unit="time"
    )

  @property
  def higher_is_better(self) -> bool:
    return self.metric != "eval/loss"


def setting(severity, label: str = "S") -> str:
  """The name of a value of a family's condition in the study (``S4``: straggler slowdown 4;
  ``F0.0125`` with label ``F``)."""
  return f"{label}{float(severity):g}"


def _real_methods(
  lrs,
  uppers,
  full,
  *,
  fedbuff_lr=(0.5, 1.0, 2.0),
  fedasync_alpha=(0.3, 0.6, 0.9),
  dc_lam=(0.01, 0.04, 0.16),
) -> dict:
  """Synchronous Bi²Clip, the eight asynchronous Bi²Clip variants, FedBuff, FedAsync and
  DC-ASGD. A method in ``full`` gets the two-parameter grid (lr x u~ for Bi²Clip, lr x its
  second parameter for a baseline); the others (compute) a learning-rate line at the middle
  value of the second parameter."""

  def grid(m, first, second, vals):
    vals = list(vals)
    return {first: list(lrs), second: vals if m in full else [vals[len(vals) // 2]]}

  ms = {
    "sync-bi2clip": (
      "sync",
      grid("sync-bi2clip", "hparams.inner_lr", "hparams.outer_upper", uppers),
      "outer threshold u~",
    )
  }
  for scheme, sv in (("A", ""), ("B", "scheme_b")):
    for extra, ev in (("", ""), ("+rate", "rate"), ("+comp", "comp"), ("+rate+comp", "rate,comp")):
      m = f"bi2clip-{scheme}{extra}"
      ms[m] = (
        ",".join(filter(None, [sv, ev])),
        grid(m, "hparams.inner_lr", "hparams.outer_upper", uppers),
        "outer threshold u~",
      )
  ms["fedbuff"] = (
    "fedbuff",
    grid("fedbuff", "hparams.inner_lr", "hparams.outer_lr", fedbuff_lr),
    "server lr",
  )
  ms["fedasync"] = (
    "fedasync",
    grid("fedasync", "hparams.inner_lr", "hparams.outer_lr", fedasync_alpha),
    "alpha (mixing)",
  )
  ms["dcasgd"] = (
    "dcasgd",
    grid("dcasgd", "hparams.outer_lr", "asynchronous.compensation.lam", dc_lam),
    "lambda",
  )
  return ms


def _reduce(methods: dict, keep: dict) -> dict:
  """``methods`` with each grid axis cut to ``keep[method][axis]`` (a list of values; an
  axis not named keeps its middle value, a method not named keeps every value)."""
  out = {}
  for m, (v, grid, axis) in methods.items():
    if m not in keep:
      out[m] = (v, grid, axis)
      continue
    out[m] = (
      v,
      {k: list(keep[m].get(k, [vals[len(vals) // 2]])) for k, vals in grid.items()},
      axis,
    )
  return out


# Compute: a run took 0.5-8 minutes of wall clock on the shared CPU (most of it
# compilation), so both studies have two-parameter grids for four methods only (the claim 3c
# comparison); the other variants run at one common point or on a learning-rate line.
# (The grid comments below tell how the first, pre-rules studies widened the grids by hand;
# under the rules a kept point on an edge extends its axis by itself.)
_LR = "hparams.inner_lr"
# Image: the CNN on Fashion-MNIST (configs/async_fashion_mnist.py:study). The four
# methods of claim 3c (async Bi²Clip A, synchronous Bi²Clip, FedBuff, FedAsync) get the
# two-parameter robustness grid, lr {0.03, 0.1, 0.3, 1} x u~ or their second parameter
# (asyncstudy2; the first study had learning-rate lines only, every run kept), widened
# once where the kept point was on an edge (Bi²Clip A: lr 0.01, u~ 0.003; FedBuff: server lr
# 0.25; FedAsync: alpha 0.15); the other eight run at the grid centre, DC-ASGD at lr 0.1.
FM_LRS = [0.03, 0.1, 0.3, 1.0]
FM_FULL = ("sync-bi2clip", "bi2clip-A", "fedbuff", "fedasync")
FM_METHODS = _reduce(
  _real_methods(FM_LRS, [0.01, 0.03, 0.1], FM_FULL),
  {
    "bi2clip-A": {_LR: [0.01] + FM_LRS, "hparams.outer_upper": [0.003, 0.01, 0.03, 0.1]},
    "fedbuff": {_LR: FM_LRS, "hparams.outer_lr": [0.25, 0.5, 1.0, 2.0]},
    "fedasync": {_LR: FM_LRS, "hparams.outer_lr": [0.15, 0.3, 0.6, 0.9]},
    "bi2clip-A+rate+comp": {_LR: [0.03, 0.1, 0.3]},
    **{
      m: {_LR: [0.1]}
      for m in (
        "bi2clip-A+rate",
        "bi2clip-A+comp",
        "bi2clip-B",
        "bi2clip-B+rate",
        "bi2clip-B+comp",
        "bi2clip-B+rate+comp",
      )
    },
    "dcasgd": {"hparams.outer_lr": [0.1]},
  },
)
# Language: MiniLM, trained head, movie-review sentences (configs/async_movie_reviews.py:study).
# (Widened in passes, every run kept: the first pass had lr {0.01, 0.03, 0.1}, whose optima
# were at 0.1, so 0.3 was added; then lr 1.0 and u~ 0.1 for async Bi²Clip A, whose optimum
# was at lr 0.3, u~ 0.03, then u~ 0.3 when it moved to u~ 0.1; lr 1.0 and server lr 4 for
# FedBuff, whose optimum was at the corner lr 0.3, server lr 2; lr 1.0 for FedAsync; then
# (asyncstudy2) u~ 1 and 3 for async Bi²Clip A, whose optimum was at the edge u~ 0.3.)
MR_LRS = [0.01, 0.03, 0.1, 0.3]
MR_FULL = ("sync-bi2clip", "bi2clip-A", "fedbuff", "fedasync")
MR_METHODS = _reduce(
  _real_methods(MR_LRS, [0.003, 0.01, 0.03], MR_FULL),
  {
    "bi2clip-A": {
      _LR: MR_LRS + [1.0],
      "hparams.outer_upper": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0],  # 1, 3: asyncstudy2
    },
    "fedbuff": {_LR: [0.03, 0.1, 0.3, 1.0], "hparams.outer_lr": [0.5, 1.0, 2.0, 4.0]},
    "fedasync": {_LR: [0.03, 0.1, 0.3, 1.0], "hparams.outer_lr": [0.3, 0.6, 0.9]},
    **{
      m: {_LR: [0.1]}
      for m in (
        "bi2clip-A+rate",
        "bi2clip-A+comp",
        "bi2clip-A+rate+comp",
        "bi2clip-B",
        "bi2clip-B+rate",
        "bi2clip-B+comp",
        "bi2clip-B+rate+comp",
      )
    },
    "dcasgd": {"hparams.outer_lr": [0.03, 0.1, 0.3]},
  },
)
_U, _SLR = "hparams.outer_upper", "hparams.outer_lr"


def _matched(label, lrs, second) -> tuple:
  """Equal-shape sub-grids for the robustness comparison: ``lrs`` x ``second[method]``."""
  return tuple(
    (label, m, {_LR: list(lrs), (_U if "bi2clip" in m else _SLR): list(v)})
    for m, v in second.items()
  )


FM_MATCHED = _matched(
  "4 × 3, lr 0.03–1",
  FM_LRS,
  {
    "bi2clip-A": [0.01, 0.03, 0.1],
    "sync-bi2clip": [0.01, 0.03, 0.1],
    "fedbuff": [0.5, 1.0, 2.0],
    "fedasync": [0.3, 0.6, 0.9],
  },
) + _matched(
  "3 × 3, lr 0.03–0.3",
  FM_LRS[:3],
  {
    "bi2clip-A": [0.01, 0.03, 0.1],
    "sync-bi2clip": [0.01, 0.03, 0.1],
    "fedbuff": [0.5, 1.0, 2.0],
    "fedasync": [0.3, 0.6, 0.9],
  },
)
MR_MATCHED = _matched(
  "3 × 3, lr 0.03–0.3",
  [0.03, 0.1, 0.3],
  {
    "bi2clip-A": [0.003, 0.01, 0.03],
    "sync-bi2clip": [0.003, 0.01, 0.03],
    "fedbuff": [0.5, 1.0, 2.0],
    "fedasync": [0.3, 0.6, 0.9],
  },
) + _matched(
  "4 × 3, lr 0.03–1",
  [0.03, 0.1, 0.3, 1.0],
  {"bi2clip-A": [0.003, 0.01, 0.03], "fedbuff": [0.5, 1.0, 2.0], "fedasync": [0.3, 0.6, 0.9]},
)
REAL_SEVERITIES = (1.0, 4.0, 16.0)  # straggler slowdowns of the final phase
REAL_BASELINES = ("sync-bi2clip", "fedbuff", "fedasync", "dcasgd")
REAL_BI2CLIP = tuple(m for m in FM_METHODS if m.startswith("bi2clip"))

# FedAsync's mixing weight alpha (its outer_lr) is at most 1.
REAL_BOUNDS = {"fedasync": ["hparams.outer_lr=None,1.0"]}


# ------------------------------------------------------------------------ failures
# The failure rate lambda is the condition; the rejoin rate mu is fixed per family, so a
# worker is down lambda / (lambda + mu) of the time (an alternating renewal process of
# exponential up and down periods): 0, 5%, 20% and 50% at the rates below. No stragglers
# (S = 1): the failures are the only slow-down. Each method's grid is a learning-rate line at
# the second parameter of its kept point in the straggler studies (synthetic: sync Bi²Clip
# u~ 0.1, async Bi²Clip u~ 0.03, FedBuff server lr 1; movie reviews: sync Bi²Clip u~ 0.01,
# async Bi²Clip u~ 0.3, FedBuff server lr 2); the quorum server takes async Bi²Clip's.
FAILURE_METHODS = ("sync-bi2clip", "quorum-bi2clip", "fedbuff", "bi2clip-A")


def _down(rates, rejoin_rate) -> dict:
  """``{lambda: "p% of time down"}``, p = lambda / (lambda + mu)."""
  return {r: f"{r / (r + rejoin_rate):.0%} of time down" for r in rates}


def _failure_claims(rates) -> tuple:
  """The comparisons of the failures study: the quorum server and buffered async Bi²Clip
  against wait-for-all at every failure rate above 0, the quorum server against FedBuff and
  against buffered async Bi²Clip at every rate."""
  q, a, sync = "quorum-bi2clip", "bi2clip-A", "sync-bi2clip"
  failing = tuple(r for r in rates if r > 0)
  return (
    Claim("F1", "the quorum server beats wait-for-all under failures", q, sync, failing),
    Claim("F2", "buffered async Bi²Clip beats wait-for-all under failures", a, sync, failing),
    Claim("F3", "the quorum server beats FedBuff", q, "fedbuff"),
    Claim("F4", "the quorum server beats buffered async Bi²Clip", q, a),
  )


def _failure_methods(lrs: dict, second: dict) -> dict:
  """The four methods of the failures study: ``{method: lr line}``, ``{method: (field,
  value)}`` of the second parameter."""
  variants = {"sync-bi2clip": "sync", "quorum-bi2clip": "quorum", "fedbuff": "fedbuff"}
  return {
    m: (variants.get(m, ""), {_LR: list(lrs[m]), second[m][0]: [second[m][1]]}, None)
    for m in FAILURE_METHODS
  }


SYN_REJOIN = 0.05  # mean down time 20 s = 4 jobs of a worker (z = 5 steps of 1 s)
SYN_FAILURE_RATES = (0.0, 0.0025, 0.0125, 0.05)
MR_REJOIN = 0.2  # mean down time 5 s = 2.5 jobs of a worker (z = 2 steps of 1 s)
MR_FAILURE_RATES = (0.0, 0.01, 0.05, 0.2)


def _failures_family(name, config, rates, rejoin, **kw) -> Family:
  return Family(
    name=name,
    config=config,
    base="study",
    severities=rates,
    tune_severity=rates[2],  # 20% of time down
    claims=_failure_claims(rates),
    report_seeds=(1, 2, 3, 4, 5),
    reference="sync-bi2clip",
    baselines=("sync-bi2clip", "fedbuff"),
    bi2clip=("quorum-bi2clip", "bi2clip-A"),
    condition="clock.failure_rate",
    label="F",
    fixed={"clock.straggler_slowdown": 1.0, "clock.rejoin_rate": rejoin},
    notes=_down(rates, rejoin),
    **kw,
  )


FAILURES_SYNTHETIC = _failures_family(
  "failures_synthetic",
  "async_synthetic",
  SYN_FAILURE_RATES,
  SYN_REJOIN,
  methods=_failure_methods(
    {
      "sync-bi2clip": [0.003, 0.01, 0.03],
      "quorum-bi2clip": [0.001, 0.003, 0.01],
      "fedbuff": [0.0003, 0.001, 0.003],
      "bi2clip-A": [0.001, 0.003, 0.01],
    },
    {
      "sync-bi2clip": (_U, 0.1),
      "quorum-bi2clip": (_U, 0.03),
      "fedbuff": (_SLR, 1.0),
      "bi2clip-A": (_U, 0.03),
    },
  ),
  budget=BUDGET,
  eval_every_time=EVAL_EVERY_TIME,
  metric="eval/loss",
  targets=TARGETS,
  out="experiments/results/async_failures/synthetic",
  title="Least squares, stable(1.5) gradient noise, worker failures",
)
FAILURES_MOVIE_REVIEWS = _failures_family(
  "failures_movie_reviews",
  "async_movie_reviews",
  MR_FAILURE_RATES,
  MR_REJOIN,
  methods=_failure_methods(
    {
      "sync-bi2clip": [0.03, 0.1, 0.3],
      "quorum-bi2clip": [0.1, 0.3, 1.0],
      "fedbuff": [0.1, 0.3, 1.0],
      "bi2clip-A": [0.1, 0.3, 1.0],
    },
    {
      "sync-bi2clip": (_U, 0.01),
      "quorum-bi2clip": (_U, 0.3),
      "fedbuff": (_SLR, 2.0),
      "bi2clip-A": (_U, 0.3),
    },
  ),
  budget=60.0,
  report_budget=120.0,
  eval_every_time=5.0,
  metric="eval/accuracy",
  targets=(0.7, 0.75, 0.78),
  chance=0.5,
  out="experiments/results/async_failures/movie_reviews",
  title="Movie reviews, MiniLM (trained head), worker failures",
)
# The failures study's smoke (seconds; the runlocal least squares, two methods, a short
# clock): the pipeline with the failure-rate condition, tune to --check, not a result.
TINY_FAILURES = Family(
  name="tiny_failures",
  config="async_synthetic",
  base="runlocal",
  methods={
    "sync-bi2clip": ("sync", {_LR: [0.01, 0.03]}, None),
    "quorum-bi2clip": ("quorum", {_LR: [0.01, 0.03]}, None),
  },
  budget=20.0,
  report_budget=30.0,
  eval_every_time=5.0,
  severities=(0.0, 0.05),
  tune_severity=0.05,
  metric="eval/loss",
  targets=(1.0, 0.5),
  out="runs/async_tiny_failures_report",
  claims=(
    Claim("F1", "the quorum server beats wait-for-all (smoke)", "quorum-bi2clip", "sync-bi2clip"),
  ),
  max_extensions=1,
  title="Smoke study of failures (runlocal least squares)",
  condition="clock.failure_rate",
  label="F",
  fixed={"clock.straggler_slowdown": 1.0, "clock.rejoin_rate": 0.2},
  notes=_down((0.0, 0.05), 0.2),
)

SYNTHETIC = Family(
  name="synthetic",
  config="async_synthetic",
  base="study",
  methods=METHODS,
  budget=BUDGET,
  report_budget=2 * BUDGET,
  eval_every_time=EVAL_EVERY_TIME,
  severities=SEVERITIES,
  tune_severity=TUNE_SEVERITY,
  bounds={"fedasync": ["hparams.outer_lr=None,1.0"]},
  metric="eval/loss",
  targets=TARGETS,
  out="experiments/results/async",
  baselines=tuple(BASELINES),
  bi2clip=tuple(BI2CLIP),
  title="Least squares, stable(1.5) gradient noise",
)

# A smoke study of seconds (the runlocal least squares, two methods, a short clock): the
# whole pipeline, tune to --check, not a result.
TINY = Family(
  name="tiny",
  config="async_synthetic",
  base="runlocal",
  methods={
    "sync-bi2clip": ("sync", {"hparams.inner_lr": [0.01, 0.03]}, None),
    "bi2clip-A": ("", {"hparams.inner_lr": [0.01, 0.03]}, None),
  },
  budget=20.0,
  report_budget=30.0,
  eval_every_time=5.0,
  severities=(1.0, 4.0),
  tune_severity=4.0,
  metric="eval/loss",
  targets=(1.0, 0.5),
  out="runs/async_tiny_report",
  claims=(
    Claim("3a", "async Bi²Clip beats synchronous Bi²Clip (smoke)", "bi2clip-A", "sync-bi2clip"),
  ),
  max_extensions=1,
  title="Smoke study (runlocal least squares)",
)

FAMILIES = {
  "tiny": TINY,
  "tiny_failures": TINY_FAILURES,
  "failures_synthetic": FAILURES_SYNTHETIC,
  "failures_movie_reviews": FAILURES_MOVIE_REVIEWS,
  "synthetic": SYNTHETIC,
  "fashion_mnist": Family(
    name="fashion_mnist",
    config="async_fashion_mnist",
    base="study",
    methods=FM_METHODS,
    budget=60.0,
    report_budget=120.0,
    eval_every_time=5.0,
    severities=REAL_SEVERITIES,
    tune_severity=4.0,
    bounds=REAL_BOUNDS,
    metric="eval/accuracy",
    targets=(0.5, 0.6, 0.65, 0.7),
    out="experiments/results/async_real/fashion_mnist",
    baselines=REAL_BASELINES,
    bi2clip=REAL_BI2CLIP,
    chance=0.1,
    title="Fashion-MNIST, CNN",
    matched=FM_MATCHED,
  ),
  "movie_reviews": Family(
    name="movie_reviews",
    config="async_movie_reviews",
    base="study",
    methods=MR_METHODS,
    budget=60.0,
    report_budget=120.0,
    eval_every_time=5.0,
    severities=REAL_SEVERITIES,
    tune_severity=4.0,
    bounds=REAL_BOUNDS,
    metric="eval/accuracy",
    targets=(0.7, 0.75, 0.78),
    out="experiments/results/async_real/movie_reviews",
    baselines=REAL_BASELINES,
    bi2clip=REAL_BI2CLIP,
    chance=0.5,
    title="Movie reviews, MiniLM (trained head)",
    matched=MR_MATCHED,
  ),
}


def family(name) -> Family:
  if isinstance(name, Family):
    return name
  if name not in FAMILIES:
    raise ValueError(f"unknown family {name!r}; choose one of {sorted(FAMILIES)}.")
  return FAMILIES[name]


def grid_points(grid: dict) -> list[dict]:
  keys = list(grid)
  return [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]

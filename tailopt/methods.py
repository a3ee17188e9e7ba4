"""Named TailOPT methods: an inner (node) and an outer (server) optax transform.

Every pair ``<outer>-<inner>`` with outer in :data:`OUTER_RULES` and inner in
:data:`INNER_RULES` can be built, and the common names of the literature resolve to one::

    method = tailopt.get_method('bi2clip', inner_lr=0.1, inner_upper=1.0, inner_lower=0.01)
    method.inner   # optax transform of the local steps (step-indexed schedules)
    method.outer   # optax transform fed the averaged pseudo-gradient Delta

Inner schedules are indexed by the round by default [ref-code]: the round builder asks
:meth:`Method.inner_for` for the transform to use with ``z`` local steps, which holds each
schedule fixed through a round. ``inner_schedule='step'`` indexes them by local step.

Defaults of hyperparameters the paper does not state are our decisions; see
:data:`DEFAULTS`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional

import optax

from tailopt import clipping
from tailopt import outer as outer_lib
from tailopt import schedules as sched_lib

INNER_RULES = ("sgd", "l2clip", "biclip", "adam", "adamw")
OUTER_RULES = ("avg", "avgm", "adagrad", "rmsprop", "adam", "yogi", "biclip", "nesterov")

ALIASES = {
    "fedavg": "avg-sgd",
    "fedavgm": "avgm-sgd",
    "fedadagrad": "adagrad-sgd",
    "fedadam": "adam-sgd",
    "fedyogi": "yogi-sgd",
    "adam2": "adam-adam",
    "diloco": "nesterov-adamw",
    "bi2clip": "biclip-biclip",
}

# Hyperparameters with their defaults. ``None`` means "depends on the rule" (see
# _rule_default). All are our decisions unless noted.
DEFAULTS: dict[str, Any] = {
    "inner_lr": None,          # 0.1 for sgd/clip inners, 1e-3 for adam/adamw
    "inner_upper": 1.0,        # u
    "inner_lower": None,       # d: 0.01 for biclip, 0.0 for l2clip
    "inner_b1": 0.9,
    "inner_b2": 0.999,
    "inner_eps": 1e-8,
    "weight_decay": 0.1,       # adamw inner (DiLoCo's published value)
    "inner_schedule": "round",  # 'round' [ref-code] or 'step'
    "outer_lr": None,          # 1.0 avg/avgm/biclip, 0.7 nesterov (DiLoCo), 0.01 adaptive
    "outer_upper": 1.0,        # u~
    "outer_lower": 1e-3,       # d~ (biclip outer)
    "outer_b1": None,          # 0 for adagrad/rmsprop, 0.9 for adam/yogi [fedopt]
    "outer_b2": 0.99,
    "outer_tau": 1e-3,
    "bias_correction": False,
    "momentum": 0.9,           # avgm and nesterov (DiLoCo's published value)
}


class ClipSpec(NamedTuple):
  """What a clipping stage does, so the round can report how often it clips.

  ``upper``/``lower`` are the thresholds exactly as the transform evaluates them (floats
  or schedules of that transform's step count).
  """
  kind: str  # 'bi' or 'l2'
  upper: sched_lib.ScalarOrSchedule
  lower: sched_lib.ScalarOrSchedule


@dataclasses.dataclass(frozen=True)
class Method:
  """An inner and an outer rule, with the hyperparameters that built them."""
  name: str
  inner_rule: str
  outer_rule: str
  hparams: dict
  outer: optax.GradientTransformation
  outer_clip: Optional[ClipSpec]
  _inner_factory: Callable[[int], tuple]

  def inner_for(self, local_steps: int) -> tuple[optax.GradientTransformation,
                                                   Optional[ClipSpec]]:
    """The inner transform (and its clip spec) for rounds of ``local_steps`` steps."""
    z = local_steps if self.hparams["inner_schedule"] == "round" else 1
    return self._inner_factory(z)

  @property
  def inner(self) -> optax.GradientTransformation:
    """The inner transform with step-indexed schedules (plain optax use)."""
    return self._inner_factory(1)[0]

  @property
  def inner_clip(self) -> Optional[ClipSpec]:
    return self._inner_factory(1)[1]


def _rule_default(key: str, inner: str, outer: str):
  if key == "inner_lr":
    return 1e-3 if inner in ("adam", "adamw") else 0.1
  if key == "inner_lower":
    return 0.01 if inner == "biclip" else 0.0
  if key == "outer_lr":
    return {"avg": 1.0, "avgm": 1.0, "biclip": 1.0, "nesterov": 0.7}.get(outer, 0.01)
  if key == "outer_b1":
    return 0.0 if outer in ("adagrad", "rmsprop") else 0.9
  raise KeyError(key)


def known_methods() -> list[str]:
  """Every resolvable name: the aliases and all ``<outer>-<inner>`` pairs."""
  pairs = [f"{o}-{i}" for o in OUTER_RULES for i in INNER_RULES]
  return sorted(ALIASES) + pairs


def _parse(name: str) -> tuple[str, str]:
  key = name.strip().lower()
  key = ALIASES.get(key, key)
  if "-" in key:
    outer, inner = key.split("-", 1)
    if outer in OUTER_RULES and inner in INNER_RULES:
      return outer, inner
  raise ValueError(
      f"Unknown method {name!r}. Known names: {', '.join(sorted(ALIASES))}, or any "
      f"'<outer>-<inner>' with outer in {OUTER_RULES} and inner in {INNER_RULES}.")


def _make_inner(inner: str, hp: dict, z: int):
  ri = lambda v: sched_lib.round_indexed(v, z)  # noqa: E731
  lr = ri(hp["inner_lr"])
  if inner == "sgd":
    return optax.sgd(lr), None
  if inner in ("l2clip", "biclip"):
    upper, lower = ri(hp["inner_upper"]), ri(hp["inner_lower"])
    clip = (clipping.l2_clip if inner == "l2clip" else clipping.bi_clip)(upper, lower)
    spec = ClipSpec("l2" if inner == "l2clip" else "bi", upper, lower)
    return optax.chain(clip, optax.sgd(lr)), spec
  if inner == "adam":
    return optax.adam(lr, b1=hp["inner_b1"], b2=hp["inner_b2"], eps=hp["inner_eps"]), None
  if inner == "adamw":
    return optax.adamw(lr, b1=hp["inner_b1"], b2=hp["inner_b2"], eps=hp["inner_eps"],
                       weight_decay=hp["weight_decay"]), None
  raise AssertionError(inner)


def _make_outer(outer: str, hp: dict):
  lr = hp["outer_lr"]
  fedopt_kw = dict(tau=hp["outer_tau"], bias_correction=hp["bias_correction"])
  if outer == "avg":
    return optax.sgd(lr), None
  if outer == "avgm":
    return optax.sgd(lr, momentum=hp["momentum"]), None
  if outer == "nesterov":
    return optax.sgd(lr, momentum=hp["momentum"], nesterov=True), None
  if outer == "biclip":
    spec = ClipSpec("bi", hp["outer_upper"], hp["outer_lower"])
    return optax.chain(clipping.bi_clip(spec.upper, spec.lower), optax.sgd(lr)), spec
  if outer == "adagrad":
    return outer_lib.fedopt_adagrad(lr, b1=hp["outer_b1"], **fedopt_kw), None
  rule = {"rmsprop": outer_lib.fedopt_rmsprop, "adam": outer_lib.fedopt_adam,
          "yogi": outer_lib.fedopt_yogi}[outer]
  return rule(lr, b1=hp["outer_b1"], b2=hp["outer_b2"], **fedopt_kw), None


def get_method(name: str, **hyperparams) -> Method:
  """Builds the named method. See :data:`DEFAULTS` for the hyperparameters.

  Raises:
    ValueError: unknown method name or hyperparameter, or invalid values.
  """
  outer, inner = _parse(name)
  unknown = sorted(set(hyperparams) - set(DEFAULTS))
  if unknown:
    raise ValueError(
        f"Unknown hyperparameter(s) {unknown} for method {name!r}; known: "
        f"{sorted(DEFAULTS)}.")
  hp = dict(DEFAULTS)
  hp.update({k: v for k, v in hyperparams.items() if v is not None})
  for k, v in list(hp.items()):
    if v is None:
      hp[k] = _rule_default(k, inner, outer)
  if hp["inner_schedule"] not in ("round", "step"):
    raise ValueError(
        f"inner_schedule={hp['inner_schedule']!r}; use 'round' (held fixed through a "
        "round, the default) or 'step'.")
  outer_tx, outer_clip = _make_outer(outer, hp)
  # Validate the inner hyperparameters now rather than at the first round.
  _make_inner(inner, hp, 1)
  return Method(
      name=name, inner_rule=inner, outer_rule=outer, hparams=hp, outer=outer_tx,
      outer_clip=outer_clip,
      _inner_factory=lambda z: _make_inner(inner, hp, z))

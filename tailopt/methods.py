r"""TailOPT methods: an inner (node) and an outer (server) optax transform.

A :class:`Method` is any pair of ``optax.GradientTransformation``\ s, yours or ours::

    method = tailopt.Method(inner=optax.adamw(3e-4),
                            outer=optax.chain(tailopt.bi_clip(0.1, 1e-3), optax.sgd(1.0)))

The named registry builds such pairs from the paper's rules: every ``<outer>-<inner>`` with
outer in :data:`OUTER_RULES` and inner in :data:`INNER_RULES`, and the common names of the
literature (:data:`ALIASES`)::

    method = tailopt.get_method('bi2clip', inner_lr=0.1, inner_upper=1.0, inner_lower=0.01)

Schedules. Every learning rate and threshold is a power law in the round
``t = round + 1`` when its ``*_exponent`` is set (:math:`\eta_t = \eta_0 t^{\nu}`,
:math:`u_t = u_0 t^{\zeta}`, :math:`d_t = d_0 t^{\gamma}`, inner and outer), or any optax
schedule of the 0-based round passed as the value. The round and the simulator give the
schedules the round explicitly (:func:`tailopt.indexed_hyperparams`), so a reset inner
state (a fresh ``inner.init``) still sees the global round; ``inner_schedule='step'``
indexes the inner schedules by the global inner step instead [ref-code: round].

Clip statistics. The clipping stages of the named methods are wrapped in
:func:`tailopt.monitor_clip`, whose state records the fractions clipped; the round reports
them (``inner_clip_above``, ...). Wrap your own clipping stage the same way (or use
``optax.snapshot``) and it reports too; ``clip_stats=False`` leaves the state array-free.

Defaults of hyperparameters the paper does not state are our decisions (:data:`DEFAULTS`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional

import jax
import optax

from tailopt import clipping
from tailopt import outer as outer_lib
from tailopt import schedules as sched_lib

INNER_RULES = ("sgd", "l2clip", "biclip", "adam", "adamw")
OUTER_RULES = ("avg", "avgm", "adagrad", "rmsprop", "adam", "yogi", "biclip", "nesterov")
# Outer rules that act coordinate by coordinate (Method.outer_elementwise). Not biclip: its
# monitored clip statistics subsample the coordinates of the whole update.
ELEMENTWISE_OUTER = ("avg", "avgm", "adagrad", "rmsprop", "adam", "yogi", "nesterov")

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
  "inner_lr": None,  # eta_0: 0.1 for sgd/clip inners, 1e-3 for adam/adamw
  "inner_lr_exponent": 0.0,  # nu: eta_t = eta_0 t^nu
  "inner_upper": 1.0,  # u_0
  "inner_upper_exponent": 0.0,  # zeta
  "inner_lower": None,  # d_0: 0.01 for biclip, 0.0 for l2clip
  "inner_lower_exponent": 0.0,  # gamma
  "inner_b1": 0.9,
  "inner_b2": 0.999,
  "inner_eps": 1e-8,
  "weight_decay": 0.1,  # adamw inner (DiLoCo's published value)
  "inner_schedule": "round",  # inner schedules indexed by 'round' [ref-code] or 'step'
  "outer_lr": None,  # 1.0 avg/avgm/biclip, 0.7 nesterov (DiLoCo), 0.01 adaptive
  "outer_lr_exponent": 0.0,
  "outer_upper": 1.0,  # u~_0
  "outer_upper_exponent": 0.0,
  "outer_lower": 1e-3,  # d~_0 (biclip outer)
  "outer_lower_exponent": 0.0,
  "outer_b1": None,  # 0 for adagrad/rmsprop, 0.9 for adam/yogi [fedopt]
  "outer_b2": 0.99,
  "outer_tau": 1e-3,
  "bias_correction": False,
  "momentum": 0.9,  # avgm and nesterov (DiLoCo's published value)
}

_LR = ("lr", "lr_exponent")
_CLIP = ("upper", "lower", "upper_exponent", "lower_exponent")
_INNER_USES = {
  "sgd": _LR,
  "l2clip": _LR + _CLIP,
  "biclip": _LR + _CLIP,
  "adam": _LR + ("b1", "b2", "eps"),
  "adamw": _LR + ("b1", "b2", "eps", "weight_decay"),
}
_OUTER_USES = {
  "avg": _LR,
  "avgm": _LR + ("momentum",),
  "nesterov": _LR + ("momentum",),
  "biclip": _LR + _CLIP,
  "adagrad": _LR + ("b1", "tau", "bias_correction"),
  "rmsprop": _LR + ("b1", "b2", "tau", "bias_correction"),
  "adam": _LR + ("b1", "b2", "tau", "bias_correction"),
  "yogi": _LR + ("b1", "b2", "tau", "bias_correction"),
}
_UNPREFIXED = ("weight_decay", "momentum", "bias_correction")


@dataclasses.dataclass(frozen=True)
class Method:
  """An inner and an outer rule: any two ``optax.GradientTransformation``\\ s.

  Attributes:
    inner: the node's transform, applied to every local gradient. The round passes it
      the extra arguments ``round_index`` and ``step_index`` (ignored by plain optax
      transforms; used by :func:`tailopt.indexed_hyperparams` schedules).
    outer: the server's transform, fed the averaged pseudo-gradient Delta as a gradient
      (extra argument ``round_index``).
    name: a label for logs and summaries.
    hparams: the hyperparameters that built it (named methods), for records.
    outer_clip: optional stateless clipping transform that the asynchronous server may
      apply to each Delta before delay compensation (``clip_then_compensate``).
    inner_rule, outer_rule: the registry's rule names, or ``None`` for your own.
    outer_elementwise: the outer rule acts coordinate by coordinate: its update and
      state at a coordinate depend only on that coordinate's Delta, parameter and state,
      and on scalars such as a step count (SGD, momentum, Nesterov, the FedOpt
      Adagrad/RMSProp/Adam/Yogi; not an L2 or global-norm clip, nor a rule whose clip
      statistics read across coordinates). The round may then split the outer state and
      step over the client devices (``tailopt.build_round(shard_outer='auto')``). Set for
      the named methods whose outer rule is one of :data:`ELEMENTWISE_OUTER`.
  """

  inner: optax.GradientTransformation
  outer: optax.GradientTransformation
  name: str = "custom"
  hparams: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  outer_clip: Optional[optax.GradientTransformation] = None
  inner_rule: Optional[str] = None
  outer_rule: Optional[str] = None
  outer_elementwise: bool = False

  def __post_init__(self):
    for field in ("inner", "outer") + (("outer_clip",) if self.outer_clip is not None else ()):
      tx = getattr(self, field)
      if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
        raise TypeError(
          f"Method.{field} must be an optax.GradientTransformation (e.g. optax.sgd(0.1)), "
          f"got {type(tx).__name__}."
        )


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


def default_hyperparameters() -> dict:
  """Every hyperparameter of the registry with its default (a copy; ``None`` = the rule's
  default, e.g. ``inner_lr`` is 0.1 for SGD inners and 1e-3 for Adam inners)."""
  return dict(DEFAULTS)


def known_methods() -> list[str]:
  """Every resolvable name: the aliases and all ``<outer>-<inner>`` pairs."""
  pairs = [f"{o}-{i}" for o in OUTER_RULES for i in INNER_RULES]
  return sorted(ALIASES) + pairs


def _parse(name: str) -> tuple[str, str]:
  key = str(name).strip().lower()
  key = ALIASES.get(key, key)
  if "-" in key:
    outer, inner = key.split("-", 1)
    if outer in OUTER_RULES and inner in INNER_RULES:
      return outer, inner
  raise ValueError(
    f"Unknown method {name!r}. Known names: {', '.join(sorted(ALIASES))}, or any "
    f"'<outer>-<inner>' with outer in {OUTER_RULES} and inner in {INNER_RULES}."
  )


def method_hyperparameters(name: str) -> tuple[str, ...]:
  """The hyperparameters the named method uses (every other one it would ignore)."""
  outer, inner = _parse(name)
  used = {"inner_schedule"}
  for level, uses in (("inner", _INNER_USES[inner]), ("outer", _OUTER_USES[outer])):
    for u in uses:
      used.add(u if u in _UNPREFIXED else f"{level}_{u}")
  return tuple(k for k in DEFAULTS if k in used)


def _check_value(key: str, value):
  """Range checks of one hyperparameter; schedules are not checked."""
  if callable(value) or key in ("inner_schedule", "bias_correction"):
    return
  if isinstance(value, jax.core.Tracer):  # optax.inject_hyperparams under jit
    return
  try:
    v = float(value)
  except (TypeError, ValueError):
    raise ValueError(f"{key}={value!r} must be a number (or an optax schedule).") from None
  if math.isnan(v):
    raise ValueError(f"{key}={v} is NaN; pass a finite number.")
  if key.endswith("_exponent"):
    if math.isinf(v):
      raise ValueError(f"{key}={v} must be finite (0 = constant).")
    return
  if key in ("momentum", "inner_b1", "inner_b2", "outer_b1", "outer_b2"):
    if not 0.0 <= v < 1.0:
      raise ValueError(f"{key}={v} must be in [0, 1); e.g. 0.9.")
    return
  if key in ("inner_upper", "outer_upper"):
    if v < 0:
      raise ValueError(f"{key}={v} is negative; clipping thresholds must be >= 0.")
    return  # an infinite upper threshold is allowed (no clipping from above)
  if v < 0:
    raise ValueError(f"{key}={v} is negative; use a value >= 0.")
  if math.isinf(v):
    raise ValueError(f"{key}={v} must be finite.")


def _scheduled(value, exponent, key):
  """A power law ``value * t**exponent`` of the round (t = round + 1), the value itself
  when the exponent is 0, or the user's schedule."""
  if callable(value):
    if exponent:
      raise ValueError(f"{key} is a schedule and {key}_exponent={exponent}; give one of the two.")
    return value
  if exponent:
    return sched_lib.power_law(float(value), float(exponent))
  return value


def _tx(factory, index, **kw):
  """``factory(**kw)``, through :func:`indexed_hyperparams` when any value is a schedule."""
  if any(callable(v) for v in kw.values()):
    return sched_lib.indexed_hyperparams(factory, index)(**kw)
  return factory(**kw)


def _level(hp, level):
  get = lambda k: _scheduled(
    hp[f"{level}_{k}"],
    hp[f"{level}_{k}_exponent"],  # noqa: E731
    f"{level}_{k}",
  )
  return get("lr"), get("upper"), get("lower")


def _make_inner(inner: str, hp: dict, clip_stats: bool):
  index = hp["inner_schedule"]
  lr, upper, lower = _level(hp, "inner")
  if inner == "sgd":
    return _tx(optax.sgd, index, learning_rate=lr)
  if inner in ("l2clip", "biclip"):
    factory = clipping.l2_clip if inner == "l2clip" else clipping.bi_clip
    clip = _tx(factory, index, upper=upper, lower=lower)
    if clip_stats:  # BiClip is coordinate-wise: its stats need only the sampled inputs
      clip = clipping.monitor_clip(clip, elementwise=inner == "biclip")
    return optax.chain(clip, _tx(optax.sgd, index, learning_rate=lr))
  adam_kw = dict(b1=hp["inner_b1"], b2=hp["inner_b2"], eps=hp["inner_eps"])
  if inner == "adam":
    return _tx(optax.adam, index, learning_rate=lr, **adam_kw)
  if inner == "adamw":
    return _tx(optax.adamw, index, learning_rate=lr, weight_decay=hp["weight_decay"], **adam_kw)
  raise AssertionError(inner)


def _make_outer(outer: str, hp: dict, clip_stats: bool):
  """(outer transform, its clipping stage or None)."""
  lr, upper, lower = _level(hp, "outer")
  if outer == "avg":
    return _tx(optax.sgd, "round", learning_rate=lr), None
  if outer in ("avgm", "nesterov"):
    return _tx(
      optax.sgd, "round", learning_rate=lr, momentum=hp["momentum"], nesterov=outer == "nesterov"
    ), None
  if outer == "biclip":
    clip = _tx(clipping.bi_clip, "round", upper=upper, lower=lower)
    stage = clipping.monitor_clip(clip, elementwise=True) if clip_stats else clip
    return optax.chain(stage, _tx(optax.sgd, "round", learning_rate=lr)), clip
  factory = {
    "adagrad": outer_lib.fedopt_adagrad,
    "rmsprop": outer_lib.fedopt_rmsprop,
    "adam": outer_lib.fedopt_adam,
    "yogi": outer_lib.fedopt_yogi,
  }[outer]
  kw = dict(
    learning_rate=lr,
    b1=hp["outer_b1"],
    tau=hp["outer_tau"],
    bias_correction=bool(hp["bias_correction"]),
  )
  if outer != "adagrad":
    kw["b2"] = hp["outer_b2"]
  return _tx(factory, "round", **kw), None


def get_method(name: str, *, clip_stats: bool = True, **hyperparams) -> Method:
  """Builds the named method (see :data:`DEFAULTS` for the hyperparameters).

  Only the hyperparameters the method uses are accepted (:func:`method_hyperparameters`);
  ``None`` means "the default". A value may be a number or an optax schedule of the
  round; ``<name>_exponent`` turns a number into a power law of the round.

  Args:
    name: an alias (``'bi2clip'``, ``'diloco'``, ...) or ``'<outer>-<inner>'``.
    clip_stats: wrap the clipping stages in :func:`tailopt.monitor_clip` (two scalars
      of state each) so that the round reports how much they clip.

  Raises:
    ValueError: unknown method name, a hyperparameter that the method does not use, or
      an invalid value (a negative or non-finite rate, momentum outside [0, 1), ...).
  """
  outer, inner = _parse(name)
  given = {k: v for k, v in hyperparams.items() if v is not None}
  unknown = sorted(set(given) - set(DEFAULTS))
  if unknown:
    raise ValueError(
      f"Unknown hyperparameter(s) {unknown} for method {name!r}; known: {sorted(DEFAULTS)}."
    )
  used = method_hyperparameters(name)
  ignored = sorted(set(given) - set(used))
  if ignored:
    raise ValueError(
      f"{name!r} ({outer}-{inner}) does not use {', '.join(ignored)}; remove "
      f"{'it' if len(ignored) == 1 else 'them'}. It uses: {', '.join(used)}."
    )
  hp = {k: v for k, v in DEFAULTS.items() if k in used}
  hp.update(given)
  for k, v in list(hp.items()):
    if v is None:
      hp[k] = _rule_default(k, inner, outer)
    _check_value(k, hp[k])
  if hp["inner_schedule"] not in ("round", "step"):
    raise ValueError(
      f"inner_schedule={hp['inner_schedule']!r}; use 'round' (held fixed through a "
      "round, the default) or 'step'."
    )
  for level in ("inner", "outer"):
    u, d = hp.get(f"{level}_upper"), hp.get(f"{level}_lower")
    if isinstance(u, (int, float)) and isinstance(d, (int, float)) and d > u:
      raise ValueError(
        f"{level}_lower={d} > {level}_upper={u}; clipping needs lower <= "
        "upper (u >= d). Swap them or lower the lower threshold."
      )
  for k in ("inner", "outer"):  # fill the exponents a level does not use with 0
    for q in ("lr", "upper", "lower"):
      hp.setdefault(f"{k}_{q}_exponent", 0.0)
      hp.setdefault(f"{k}_{q}", None)
  inner_tx = _make_inner(inner, hp, clip_stats)
  outer_tx, outer_clip = _make_outer(outer, hp, clip_stats)
  record = {k: v for k, v in hp.items() if k in used}
  return Method(
    inner=inner_tx,
    outer=outer_tx,
    name=str(name),
    hparams=record,
    outer_clip=outer_clip,
    inner_rule=inner,
    outer_rule=outer,
    outer_elementwise=outer in ELEMENTWISE_OUTER,
  )

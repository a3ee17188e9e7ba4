"""Clipping transforms: coordinate-wise BiClip and (two-sided) global-norm L2 clipping.

Both are optax ``GradientTransformation``s, so they compose with any optax chain::

    tx = optax.chain(tailopt.bi_clip(upper=1.0, lower=0.01), optax.sgd(0.1))

References:
  Lee, Zaheer & Li, "Efficient Distributed Optimization under Heavy-Tailed Noise",
  ICML 2025 (arXiv 2502.04164), Algorithms 1 and 4.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tailopt import schedules as sched_lib
from tailopt.schedules import ScalarOrSchedule


class ClipState(NamedTuple):
  """State of :func:`bi_clip` and :func:`l2_clip`.

  ``count`` is ``None`` (the state holds no arrays at all) when both thresholds are
  constants, and the int32 step count when either is a schedule.
  """

  count: Optional[jax.Array]


def _check_thresholds(name: str, upper: ScalarOrSchedule, lower: ScalarOrSchedule):
  constants = {}
  for label, value in (("upper", upper), ("lower", lower)):
    if sched_lib.is_schedule(value) or isinstance(value, jax.core.Tracer):
      continue  # schedules and traced values (optax.inject_hyperparams) are not checked
    try:
      v = float(value)
    except (TypeError, ValueError) as e:
      raise TypeError(
        f"{name}: {label} must be a float or an optax schedule, got {value!r}."
      ) from e
    if v != v:
      raise ValueError(f"{name}: {label} is NaN; pass a number >= 0.")
    if v < 0:
      raise ValueError(f"{name}: {label}={v} is negative; clipping thresholds must be >= 0.")
    constants[label] = v
  if "upper" in constants and "lower" in constants and constants["lower"] > constants["upper"]:
    raise ValueError(
      f"{name}: lower={constants['lower']} > upper={constants['upper']}; clipping needs "
      "lower <= upper (u >= d). Swap them or lower the lower threshold."
    )


def _init_state(upper, lower) -> ClipState:
  if sched_lib.is_schedule(upper) or sched_lib.is_schedule(lower):
    return ClipState(count=jnp.zeros([], jnp.int32))
  return ClipState(count=None)


def _thresholds(upper, lower, state: ClipState):
  count = state.count if state.count is not None else 0
  return sched_lib.evaluate(upper, count), sched_lib.evaluate(lower, count)


def _next_state(state: ClipState) -> ClipState:
  if state.count is None:
    return state
  return ClipState(count=optax.safe_increment(state.count))


def bi_clip_array(x: jax.Array, upper, lower) -> jax.Array:
  """Coordinate-wise BiClip of one array: ``sign(x) * min(max(|x|, lower), upper)``.

  ``|x_j| < lower`` is raised to ``lower``, ``|x_j| > upper`` is cut to ``upper``;
  exact zeros stay zero (``sign(0) = 0``); ``+inf -> upper``, ``-inf -> -upper``;
  NaN coordinates become 0 (see :func:`bi_clip`). The dtype of ``x`` is kept.
  """
  u = jnp.asarray(upper, x.dtype)
  d = jnp.asarray(lower, x.dtype)
  clipped = jnp.sign(x) * jnp.minimum(jnp.maximum(jnp.abs(x), d), u)
  return jnp.where(jnp.isnan(x), jnp.zeros_like(x), clipped)


def bi_clip(upper: ScalarOrSchedule, lower: ScalarOrSchedule = 0.0) -> optax.GradientTransformation:
  r"""Coordinate-wise clipping from above and below (BiClip).

  .. math::

      \mathrm{BiClip}(u, d, x)_j = \operatorname{sign}(x_j)\,\min(\max(|x_j|, d), u)

  Coordinates with magnitude below ``d`` are raised to ``d``, those above ``u`` are cut
  to ``u``, the rest pass. Special cases: ``d = 0`` is coordinate-wise value clipping,
  ``d = u`` is ``u * sign(x)`` (signSGD), ``d = 0, u = inf`` is the identity.

  Non-finite input: ``+inf`` maps to ``u``, ``-inf`` to ``-u``. NaN coordinates are set
  to 0 [our decision: one bad coordinate must not poison the model; the training round
  counts them in its ``nonfinite_frac`` metric].

  The state holds no arrays when both thresholds are constants: Bi²Clip is stateless.

  Args:
    upper: ``u`` (float or optax schedule of the step count), ``u >= 0``.
    lower: ``d`` (float or optax schedule), ``0 <= d <= u``.

  Returns:
    An ``optax.GradientTransformation``.

  References:
    Lee, Zaheer & Li, ICML 2025 (arXiv 2502.04164), Algorithm 4 (Bi²Clip).
  """
  _check_thresholds("bi_clip", upper, lower)

  def init_fn(params):
    del params
    return _init_state(upper, lower)

  def update_fn(updates, state, params=None):
    del params
    u, d = _thresholds(upper, lower, state)
    updates = jax.tree.map(lambda g: bi_clip_array(g, u, d), updates)
    return updates, _next_state(state)

  return optax.GradientTransformation(init_fn, update_fn)


def _finite_direction(tree):
  """Replaces NaN by 0; if any coordinate is infinite keeps only the infinite ones (as ±1).

  That is the limit direction of a vector whose infinite coordinates grow without bound.
  """
  leaves = jax.tree.leaves(tree)
  any_inf = jnp.any(jnp.stack([jnp.any(jnp.isinf(g)) for g in leaves])) if leaves else False

  def fix(g):
    g = jnp.where(jnp.isnan(g), jnp.zeros_like(g), g)
    inf_dir = jnp.where(jnp.isinf(g), jnp.sign(g), jnp.zeros_like(g))
    return jnp.where(any_inf, inf_dir, g)

  return jax.tree.map(fix, tree), any_inf


def global_norm(tree) -> jax.Array:
  """L2 norm over every coordinate of a pytree, accumulated in float32."""
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return jnp.zeros([], jnp.float32)
  return jnp.sqrt(sum(jnp.sum(jnp.square(g.astype(jnp.float32))) for g in leaves))


def l2_clip_scale(norm: jax.Array, upper, lower) -> jax.Array:
  """The factor that rescales a vector of norm ``norm`` into ``[lower, upper]``."""
  upper = jnp.asarray(upper, jnp.float32)
  lower = jnp.asarray(lower, jnp.float32)
  safe = jnp.where(norm > 0, norm, 1.0)
  return jnp.where(
    norm > upper, upper / safe, jnp.where((norm < lower) & (norm > 0), lower / safe, 1.0)
  )


def l2_clip(upper: ScalarOrSchedule, lower: ScalarOrSchedule = 0.0) -> optax.GradientTransformation:
  r"""Global-norm clipping, from above and optionally from below.

  .. math::

      x \mapsto x \cdot \begin{cases} u / \|x\|_2 & \|x\|_2 > u \\
                                       d / \|x\|_2 & 0 < \|x\|_2 < d \\
                                       1 & \text{otherwise}\end{cases}

  The norm is taken over the whole pytree. ``lower = 0`` is ordinary norm clipping
  (``optax.clip_by_global_norm``); ``lower > 0`` is the two-sided form of the TailOPT
  reference code. Zero stays zero. NaN coordinates are set to 0; if any coordinate is
  infinite the result is ``u`` times the (normalised) direction of the infinite
  coordinates, the limit of the finite case.

  Args:
    upper: ``u`` (float or optax schedule), ``u >= 0``.
    lower: ``d`` (float or optax schedule), ``0 <= d <= u``.
  """
  _check_thresholds("l2_clip", upper, lower)

  def init_fn(params):
    del params
    return _init_state(upper, lower)

  def update_fn(updates, state, params=None):
    del params
    u, d = _thresholds(upper, lower, state)
    updates, any_inf = _finite_direction(updates)
    norm = global_norm(updates)
    scale = jnp.where(
      any_inf, jnp.asarray(u, jnp.float32) / jnp.maximum(norm, 1.0), l2_clip_scale(norm, u, d)
    )
    updates = jax.tree.map(lambda g: g * scale.astype(g.dtype), updates)
    return updates, _next_state(state)

  return optax.GradientTransformation(init_fn, update_fn)


# ---------------------------------------------------------------------------
# Clip statistics: measured from what a clipping transform does, for any transform.

STAT_SAMPLES = 4096


class ClipMonitorState(NamedTuple):
  """State of :func:`monitor_clip`: the wrapped transform's state and ``measurements``,
  ``{'clip_above': f, 'clip_below': f}`` from the last update (read them with
  ``optax.tree.get(state, 'clip_above')``; the TailOPT round reports them as
  ``inner_clip_above``/``outer_clip_above``...)."""

  measurements: dict
  inner_state: Any


def _subsample(g, max_samples):
  """At most ``max_samples`` coordinates of ``g``, at fixed pseudo-random positions (a
  regular stride would alias with periodic structure, e.g. rows of a matrix); ``g`` itself
  when it is that small. Never reshapes ``g``, so it works on explicitly sharded arrays
  (the sampled coordinates come back replicated)."""
  if max_samples is None or g.size <= max_samples:
    return g
  idx = np.sort(np.random.default_rng(g.size).choice(g.size, max_samples, replace=False))
  where = tuple(i.astype(np.int32) for i in np.unravel_index(idx, g.shape))
  explicit = any(axis is not None for axis in jax.typeof(g).sharding.spec)
  return g.at[where].get(out_sharding=jax.P() if explicit else None)


def clip_fractions(
  before, after, max_samples: Optional[int] = STAT_SAMPLES
) -> tuple[jax.Array, jax.Array]:
  """Fractions of coordinates a clipping stage shrank (``|after| < |before|``: cut from
  above) and grew (``|after| > |before|``: raised from below). Two float32 scalars.

  For BiClip these are exactly the fractions with ``|x| > u`` and ``0 < |x| < d``; for
  global-norm clipping, the fraction of nonzero coordinates when the norm was cut (else 0).
  ``max_samples``: estimate each leaf's fractions from at most this many coordinates at
  fixed pseudo-random positions (weighted by the leaf's size) rather than a full pass;
  exact when every leaf is at most that size. NaN inputs count in neither.
  """
  leaves_b = jax.tree.leaves(before)
  leaves_a = jax.tree.leaves(after)
  return _fractions(
    [_subsample(b, max_samples) for b in leaves_b],
    [_subsample(a, max_samples) for a in leaves_a],
    [b.size for b in leaves_b],
  )


def _fractions(sub_before, sub_after, sizes):
  """:func:`clip_fractions` from subsampled leaves and their full sizes."""
  n = max(sum(sizes), 1)
  above = jnp.zeros([], jnp.float32)
  below = jnp.zeros([], jnp.float32)
  for b, a, size in zip(sub_before, sub_after, sizes):
    bb = jnp.abs(b).astype(jnp.float32)
    aa = jnp.abs(a).astype(jnp.float32)
    # Counts in float32 whatever ``jax_enable_x64`` says (a weakly typed 1.0 would be
    # float64 there and promote the float32 accumulator of a scan carry).
    w = jnp.float32(size / max(bb.size, 1))
    above += w * jnp.sum(aa < bb, dtype=jnp.float32)
    below += w * jnp.sum(aa > bb, dtype=jnp.float32)
  return above / jnp.float32(n), below / jnp.float32(n)


def monitor_clip(
  tx: optax.GradientTransformation,
  max_samples: Optional[int] = STAT_SAMPLES,
  elementwise: bool = False,
) -> optax.GradientTransformationExtraArgs:
  """Wraps a clipping transform so that its state records how much it clipped.

  Works for any clipping stage (:func:`bi_clip`, :func:`l2_clip`, ``optax.clip``,
  ``optax.clip_by_global_norm`` or your own): it compares the stage's input and output
  with :func:`clip_fractions` and stores ``clip_above`` and ``clip_below`` in a
  :class:`ClipMonitorState`, where ``optax.tree.get`` and the TailOPT round find them.
  Wrap the clipping stage only, not a chain that also scales by a learning rate::

      inner = optax.chain(tailopt.monitor_clip(my_clip), optax.sgd(0.1))

  The state grows by two float32 scalars; the updates are those of ``tx``.

  ``elementwise=True`` (for a coordinate-wise clip whose thresholds do not depend on the
  other coordinates, e.g. :func:`bi_clip` or ``optax.clip``): the fractions come from
  applying ``tx`` to the sampled input coordinates alone, so the full output is never read
  twice (cheaper inside the local steps; the same numbers for such a clip).
  """
  tx = optax.with_extra_args_support(tx)

  def init_fn(params):
    zero = jnp.zeros([], jnp.float32)
    return ClipMonitorState({"clip_above": zero, "clip_below": zero}, tx.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    new, inner = tx.update(updates, state.inner_state, params, **extra_args)
    if elementwise:
      leaves, treedef = jax.tree.flatten(updates)
      sub = [_subsample(g, max_samples) for g in leaves]
      sub_new, _ = tx.update(
        jax.tree.unflatten(treedef, sub), state.inner_state, None, **extra_args
      )
      above, below = _fractions(sub, jax.tree.leaves(sub_new), [g.size for g in leaves])
    else:
      above, below = clip_fractions(updates, new, max_samples)
    return new, ClipMonitorState({"clip_above": above, "clip_below": below}, inner)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _measurement_dicts(state):
  """Every measurement dict in an optimizer state: :class:`ClipMonitorState`'s and
  ``optax.snapshot``/``optax.monitor``'s, in tree order."""
  found = []

  def visit(node):
    if isinstance(node, ClipMonitorState):
      found.append(node.measurements)
      visit(node.inner_state)
    elif isinstance(node, optax.transforms.SnapshotState):
      found.append(node.measurement)
    elif isinstance(node, optax.transforms.MonitorState):
      found.append(node.measurements)
    elif isinstance(node, (tuple, list)):
      for child in node:
        visit(child)
    elif isinstance(node, dict):
      for child in node.values():
        visit(child)

  visit(state)
  return found


def measurements(state, prefix: str = "") -> dict:
  """The scalar measurements recorded in an optimizer state, as ``{prefix + name: value}``.

  Finds :func:`monitor_clip`'s clip fractions and every scalar of ``optax.snapshot`` /
  ``optax.monitor`` (non-scalar measurements are skipped). A name met twice gets a
  suffix ``_1``, ``_2``... The TailOPT round reports them as metrics with the prefixes
  ``inner_`` (mean over the local steps and clients) and ``outer_``.
  """
  out = {}
  for d in _measurement_dicts(state):
    for name, value in d.items():
      if not hasattr(value, "ndim") or value.ndim != 0:
        continue
      key, i = prefix + name, 1
      while key in out:
        key, i = f"{prefix}{name}_{i}", i + 1
      out[key] = jnp.asarray(value, jnp.float32)
  return out

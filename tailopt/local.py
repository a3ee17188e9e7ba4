r"""The node's side of a round: ``z`` inner steps in ``lax.scan`` and the pseudo-gradient.

.. math::

    x_i \leftarrow x_t;\quad \text{repeat } z:\ x_i \leftarrow x_i + \mathrm{InnerUpdate}(g(x_i));
    \qquad \Delta_i = x_t - x_i

Used by the synchronous round (:mod:`tailopt.rounds`) and the asynchronous simulator.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from tailopt import clipping

LossFn = Callable[[Any, Any], jax.Array]


class LocalResult(NamedTuple):
  delta: Any  # x_start - x_end, gradient-like sign
  inner_state: Any
  noise_state: Any
  metrics: dict  # loss: mean over the steps; nonfinite_frac: fraction of steps
  # whose gradient had a NaN/inf; inner_<name>: the inner state's
  # measurements (e.g. inner_clip_above), mean over the steps


def nonfinite(tree) -> jax.Array:
  """1.0 if any coordinate of ``tree`` is NaN or infinite, else 0.0.

  Sums ``g - g`` per leaf: every finite coordinate contributes an exact 0 and a NaN or an
  infinity contributes NaN (``inf - inf``), so the sum is 0 or NaN. It cannot overflow on
  huge finite values, as a plain sum can (3e38 + 3e38), and, unlike ``max(|g|)``, it shares
  no subexpression with a clip's ``|g|`` that XLA would then write out in full.
  """
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return jnp.zeros([], jnp.float32)
  total = sum(jnp.sum(g - g).astype(jnp.float32) for g in leaves)
  return jnp.isnan(total).astype(jnp.float32)


def match_vma(new, old):
  """Casts each leaf of ``new`` to vary over the mesh axes its counterpart in ``old``
  varies over (under ``shard_map``), so a scan carry keeps its type: e.g. a transform's
  state leaf computed from the invariant round index, carried per client."""

  def fix(n, o):
    need = _varying_axes(o) - _varying_axes(n)
    return jax.lax.pcast(n, tuple(sorted(need)), to="varying") if need else n

  return jax.tree.map(fix, new, old)


def _varying_axes(x) -> frozenset:
  """The mesh axes a value varies over inside ``shard_map`` (empty outside)."""
  aval = jax.typeof(x)
  mat = getattr(aval, "manual_axis_type", None)  # jax 0.10
  if mat is not None:
    return frozenset(mat.varying)
  return frozenset(getattr(aval, "vma", None) or ())  # other versions


def make_local_run(
  loss_fn: LossFn,
  inner: optax.GradientTransformation,
  *,
  noise: Optional[optax.GradientTransformation] = None,
  has_aux: bool = False,
  check_finite: bool = True,
) -> Callable[..., LocalResult]:
  """Returns ``run(params, inner_state, noise_state, batches, round_index=0, step0=0,
  num_steps=None) -> LocalResult``.

  ``batches`` is a pytree whose leaves have a leading axis of length z (one minibatch per
  step). ``noise`` (optional) perturbs each gradient before the inner rule, as injected
  heavy-tailed noise. Every inner update gets the extra arguments ``round_index`` and
  ``step_index`` (``step0`` + the local step): schedules that must see the global round or
  step read them (:func:`tailopt.indexed_hyperparams`); the inner state's own counters are
  never touched. ``num_steps`` (a traced int, optional) runs only the first ``num_steps``
  of the z scanned steps (dynamic local updates); the rest leave the carry unchanged.
  ``check_finite`` (default) reports ``nonfinite_frac``, the fraction of steps whose
  gradient had a NaN or an infinity (counted before the inner rule, which may clip them
  away); it reads every gradient once more per step. ``False`` drops the check and the
  metric.
  """
  grad_fn = jax.value_and_grad(loss_fn, has_aux=has_aux)
  inner = optax.with_extra_args_support(inner)

  def step(carry, batch):
    x, s, ns, k, i, r, n = carry
    if has_aux:
      (loss, _), g = grad_fn(x, batch)
    else:
      loss, g = grad_fn(x, batch)
    bad = nonfinite(g) if check_finite else None
    ns2 = ns
    if noise is not None:
      g, ns2 = noise.update(g, ns, x)
    updates, s2 = inner.update(g, s, x, round_index=r, step_index=k)
    s2 = match_vma(s2, s)
    x2 = optax.apply_updates(x, updates)
    stats = dict(loss=loss.astype(jnp.float32), **clipping.measurements(s2, "inner_"))
    if check_finite:
      stats["nonfinite_frac"] = bad
    if n is None:
      return (x2, s2, ns2, k + 1, i + 1, r, n), stats
    active = i < n
    pick = lambda a, b: jax.tree.map(lambda u, v: jnp.where(active, u, v), a, b)  # noqa
    stats = {key: v * active.astype(jnp.float32) for key, v in stats.items()}
    return (
      pick(x2, x),
      pick(s2, s),
      pick(ns2, ns),
      k + active.astype(jnp.int32),
      i + 1,
      r,
      n,
    ), stats

  def run(params, inner_state, noise_state, batches, round_index=0, step0=0, num_steps=None):
    n = None if num_steps is None else jnp.asarray(num_steps, jnp.int32)
    init = (
      params,
      inner_state,
      noise_state,
      jnp.asarray(step0, jnp.int32),
      jnp.zeros([], jnp.int32),
      jnp.asarray(round_index, jnp.int32),
      n,
    )
    (x, s, ns, *_), stats = jax.lax.scan(step, init, batches)
    delta = jax.tree.map(lambda a, b: a - b, params, x)
    if n is None:
      metrics = {key: jnp.mean(v) for key, v in stats.items()}
    else:
      denom = jnp.maximum(n.astype(jnp.float32), 1.0)
      metrics = {key: jnp.sum(v) / denom for key, v in stats.items()}
    return LocalResult(delta, s, ns, metrics)

  return run

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
from tailopt import schedules as sched_lib
from tailopt.methods import ClipSpec

LossFn = Callable[[Any, Any], jax.Array]


class LocalResult(NamedTuple):
  delta: Any            # x_start - x_end, gradient-like sign
  inner_state: Any
  noise_state: Any
  metrics: dict         # loss: mean over the z steps; nonfinite_steps: fraction of steps
                        # whose gradient had a NaN/inf; inner_clip_*: mean over steps


def set_counts(state, value):
  """Sets every ``count`` field of the NamedTuple states inside ``state`` to ``value``.

  Used when inner state is reset each round, so that step- or round-indexed schedules
  still see the global step.
  """
  def is_counted(node):
    return isinstance(node, tuple) and hasattr(node, "_fields") and "count" in node._fields

  def fix(node):
    if is_counted(node) and node.count is not None:
      return node._replace(count=jnp.asarray(value, node.count.dtype))
    return node

  return jax.tree.map(fix, state, is_leaf=is_counted)


STAT_SAMPLES = 4096


def clip_fractions(spec: Optional[ClipSpec], tree, count, max_samples=STAT_SAMPLES):
  """(fraction clipped from above, fraction raised from below) for a clip stage,
  estimated from at most ``max_samples`` coordinates per leaf (exact below that)."""
  if spec is None:
    zero = jnp.zeros([], jnp.float32)
    return zero, zero
  u = sched_lib.evaluate(spec.upper, count)
  d = sched_lib.evaluate(spec.lower, count)
  fn = clipping.bi_clip_fractions if spec.kind == "bi" else clipping.l2_clip_fractions
  return fn(tree, u, d, max_samples)


def _nonfinite(tree):
  """1.0 if any coordinate of ``tree`` is NaN or infinite, else 0.0 (one sum per leaf)."""
  total = sum(jnp.sum(g.astype(jnp.float32)) for g in jax.tree.leaves(tree))
  return (~jnp.isfinite(total)).astype(jnp.float32)


def make_local_run(loss_fn: LossFn, inner: optax.GradientTransformation, *,
                   inner_clip: Optional[ClipSpec] = None,
                   noise: Optional[optax.GradientTransformation] = None,
                   has_aux: bool = False):
  """Returns ``run(params, inner_state, noise_state, batches, step0) -> LocalResult``.

  ``batches`` is a pytree whose leaves have a leading axis of length z (one minibatch per
  step). ``noise`` (optional) perturbs each gradient before the inner rule, as injected
  heavy-tailed noise; ``step0`` is the global index of the first step (for clip stats).
  """
  grad_fn = jax.value_and_grad(loss_fn, has_aux=has_aux)

  def step(carry, batch):
    x, s, ns, k = carry
    if has_aux:
      (loss, _), g = grad_fn(x, batch)
    else:
      loss, g = grad_fn(x, batch)
    nonfinite = _nonfinite(g)
    if noise is not None:
      g, ns = noise.update(g, ns, x)
    above, below = clip_fractions(inner_clip, g, k)
    updates, s = inner.update(g, s, x)
    x = optax.apply_updates(x, updates)
    stats = dict(loss=loss.astype(jnp.float32), inner_clip_above=above,
                 inner_clip_below=below, nonfinite_steps=nonfinite)
    return (x, s, ns, k + 1), stats

  def run(params, inner_state, noise_state, batches, step0=0):
    step0 = jnp.asarray(step0, jnp.int32)
    init = (params, inner_state, noise_state, step0)
    (x, s, ns, _), stats = jax.lax.scan(step, init, batches)
    delta = jax.tree.map(lambda a, b: a - b, params, x)
    metrics = {k: jnp.mean(v) for k, v in stats.items()}
    return LocalResult(delta, s, ns, metrics)

  return run

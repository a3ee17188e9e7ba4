r"""ZClip-style adaptive gradient clipping: clip the global norm at a z-score of its own EMA.

    tx = optax.chain(tailopt.zclip(z_threshold=2.5, ema_decay=0.97), optax.sgd(0.1))

Reference:
  Kumar, Owen, Ashraf & Dickson, "ZClip: Adaptive Spike Mitigation for LLM Pre-Training",
  2025 (arXiv 2504.02507).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from tailopt import schedules as sched_lib
from tailopt.clipping import global_norm
from tailopt.schedules import ScalarOrSchedule


class ZClipState(NamedTuple):
  """State of :func:`zclip`: the step ``count`` and the running ``mean`` and ``var`` of the
  (clipped) global gradient norm, float32 scalars."""

  count: jax.Array
  mean: jax.Array
  var: jax.Array


def _check(z_threshold, ema_decay, warmup_steps):
  if isinstance(z_threshold, (int, float)) and not z_threshold > 0:
    raise ValueError(f"zclip: z_threshold={z_threshold} must be > 0; e.g. 2.5.")
  if isinstance(ema_decay, (int, float)) and not 0 <= ema_decay < 1:
    raise ValueError(f"zclip: ema_decay={ema_decay} must be in [0, 1); e.g. 0.97.")
  if int(warmup_steps) < 1:
    raise ValueError(f"zclip: warmup_steps={warmup_steps} must be >= 1; e.g. 25.")


def zclip(
  z_threshold: ScalarOrSchedule = 2.5,
  ema_decay: ScalarOrSchedule = 0.97,
  warmup_steps: int = 25,
  eps: float = 1e-6,
) -> optax.GradientTransformation:
  r"""Clips the global norm of the updates when it is a z-score outlier of its own history.

  With :math:`n_t = \|g_t\|_2` (over the whole pytree), running mean :math:`\mu` and
  variance :math:`\sigma^2` of the norms seen so far:

  * the first ``warmup_steps`` steps pass unchanged; :math:`\mu, \sigma^2` are the plain
    mean and (population) variance of their norms (Welford's update);
  * afterwards, :math:`z_t = (n_t - \mu_{t-1}) / \max(\sigma_{t-1}, \epsilon)`; when
    :math:`z_t > z_{thr}` the update is rescaled to norm
    :math:`c_t = \mu_{t-1} + z_{thr}\,\sigma_{t-1}`, i.e. :math:`g_t \leftarrow g_t\,c_t/n_t`
    (else kept; let :math:`n^*_t` be the norm kept), and the statistics follow an EMA of the
    kept norm: :math:`\mu_t = \beta\mu_{t-1} + (1-\beta) n^*_t`,
    :math:`\sigma^2_t = \beta\sigma^2_{t-1} + (1-\beta)(n^*_t - \mu_t)^2`.

  Updating the statistics with the clipped norm keeps one spike from inflating the
  threshold (as in ZClip; its paper's defaults are :math:`z_{thr} = 2.5`,
  :math:`\beta = 0.97`). Non-finite norms (NaN/inf updates) are passed through unchanged
  and leave the statistics as they were.

  Args:
    z_threshold: :math:`z_{thr} > 0`, a float or an optax schedule of the step count.
    ema_decay: :math:`\beta \in [0, 1)`, a float or a schedule of the step count.
    warmup_steps: steps that only collect statistics (>= 1).
    eps: floor of :math:`\sigma` in the z-score.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`ZClipState`.

  Reference: Kumar et al., "ZClip: Adaptive Spike Mitigation for LLM Pre-Training", 2025.
  """
  _check(z_threshold, ema_decay, warmup_steps)
  warmup = int(warmup_steps)

  def init_fn(params):
    del params
    zero = jnp.zeros([], jnp.float32)
    return ZClipState(count=jnp.zeros([], jnp.int32), mean=zero, var=zero)

  def update_fn(updates, state, params=None):
    del params
    count = state.count
    z_thr = jnp.asarray(sched_lib.evaluate(z_threshold, count), jnp.float32)
    beta = jnp.asarray(sched_lib.evaluate(ema_decay, count), jnp.float32)
    norm = global_norm(updates)
    finite = jnp.isfinite(norm)
    sigma = jnp.sqrt(state.var)
    z = (norm - state.mean) / jnp.maximum(sigma, eps)
    warming = count < warmup
    cap = state.mean + z_thr * sigma
    clip = finite & ~warming & (z > z_thr)
    kept = jnp.where(clip, cap, norm)
    scale = jnp.where(clip, cap / jnp.where(norm > 0, norm, 1.0), 1.0)
    updates = jax.tree.map(lambda g: (g * scale.astype(g.dtype)).astype(g.dtype), updates)
    # Welford during the warm-up, then the EMA of the kept norm.
    k = count.astype(jnp.float32) + 1.0
    w_mean = state.mean + (kept - state.mean) / k
    w_var = state.var + ((kept - state.mean) * (kept - w_mean) - state.var) / k
    e_mean = beta * state.mean + (1.0 - beta) * kept
    e_var = beta * state.var + (1.0 - beta) * jnp.square(kept - e_mean)
    mean = jnp.where(warming, w_mean, e_mean)
    var = jnp.where(warming, w_var, e_var)
    mean = jnp.where(finite, mean, state.mean)
    var = jnp.where(finite, var, state.var)
    new = ZClipState(count=optax.safe_increment(count), mean=mean, var=var)
    return updates, new

  return optax.GradientTransformation(init_fn, update_fn)

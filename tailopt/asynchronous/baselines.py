r"""Asynchronous baselines from prior work, as settings of the same simulator.

Each preset returns an :class:`AsyncSetup` (``method``, ``config``, ``outer``) to pass to
:class:`tailopt.asynchronous.Simulator`:

* :func:`fedasync` -- Xie, Koyejo & Gupta, "Asynchronous Federated Optimization", 2019:
  :math:`x \leftarrow (1 - \alpha_t) x + \alpha_t x_\text{local}`,
  :math:`\alpha_t = \alpha\, s(\tau)`. Here: scheme B, pseudo-gradient
  :math:`x_\text{now} - x_\text{local} = \Delta + (x_\text{now} - x_\text{pulled})`, outer
  SGD(:math:`\alpha`), scale :math:`s(\tau)` (polynomial, a = 0.5, by default).
* :func:`fedbuff` -- Nguyen et al., "Federated Learning with Buffered Asynchronous
  Aggregation", AISTATS 2022: buffer of K, :math:`\bar\Delta = \frac1K\sum_k
  \Delta_k/\sqrt{1+\tau_k}`, server SGD (optionally with momentum).
* :func:`dcasgd` -- Zheng et al., "Asynchronous SGD with Delay Compensation", ICML 2017:
  z = 1, the worker sends its gradient (inner SGD with lr 1), server
  :math:`x \leftarrow x - \eta(g + \lambda g\odot g\odot(x_\text{now} - x_\text{pulled}))`,
  constant or adaptive :math:`\lambda`.
* :func:`async_local_sgd` -- Liu et al., "Asynchronous Local-SGD Training for Language
  Modeling", arXiv 2401.09135, 2024: scheme B with the Delayed Nesterov outer rule
  (:func:`delayed_nesterov`) and dynamic local updates
  :math:`H_w = \lfloor v_w / \max_u v_u \cdot H \rfloor`.

Default hyperparameters of the presets are our decisions unless the docstring cites them.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from tailopt.asynchronous import compensation as comp_lib
from tailopt.asynchronous import server as server_lib
from tailopt.asynchronous import staleness as stale_lib
from tailopt.methods import Method, get_method


class DelayedNesterovState(NamedTuple):
  count: jax.Array  # arrivals seen
  momentum: optax.Updates
  buffer: optax.Updates


def delayed_nesterov(
  learning_rate: optax.ScalarOrSchedule, momentum: float = 0.9, period: int = 1
) -> optax.GradientTransformation:
  r"""Delayed Nesterov (DN) outer rule (Liu et al. 2024, our reading of their Algorithm).

  Every update :math:`\Delta_t` is added to a buffer :math:`b`. The momentum is updated only
  every ``period`` (= N workers in the paper) arrivals; in between the server takes plain
  steps of ``lr / period``:

  .. math::

      t \bmod N \ne 0:&\quad x \leftarrow x - \tfrac{\eta}{N}\Delta_t \\
      t \bmod N = 0:&\quad m \leftarrow \beta m + b / N;\;
                       x \leftarrow x - \eta(\beta m + \Delta_t / N);\; b \leftarrow 0

  With ``period = 1`` this is ordinary Nesterov SGD (``optax.sgd(lr, momentum, nesterov=True)``).
  ``learning_rate`` may be a schedule of the arrival count (``optax`` convention: evaluated at
  the number of updates before this one); ``learning_rate`` and ``momentum`` may be traced
  (``optax.inject_hyperparams``), in which case the range check of ``momentum`` is skipped.
  ``period`` is static (it shapes the schedule of boundaries).
  """
  if int(period) != period or period < 1:
    raise ValueError(f"delayed_nesterov: period={period} must be an integer >= 1.")
  if isinstance(momentum, (int, float)) and not 0.0 <= momentum < 1.0:
    raise ValueError(f"delayed_nesterov: momentum={momentum} must be in [0, 1).")

  def init_fn(params):
    zeros = optax.tree_utils.tree_zeros_like(params)
    return DelayedNesterovState(count=jnp.zeros([], jnp.int32), momentum=zeros, buffer=zeros)

  def update_fn(updates, state, params=None):
    del params
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    count = state.count + 1
    buf = jax.tree.map(lambda b, g: b + g, state.buffer, updates)
    boundary = (count % period) == 0

    def cast(x, like):  # keep each leaf's dtype (a float64 lr under x64 must not promote)
      return jnp.asarray(x).astype(like.dtype)

    m_new = jax.tree.map(lambda m, b: cast(momentum * m + b / period, m), state.momentum, buf)
    nest = jax.tree.map(lambda m, g: cast(-lr * (momentum * m + g / period), g), m_new, updates)
    plain = jax.tree.map(lambda g: cast(-(lr / period) * g, g), updates)
    out = jax.tree.map(lambda a, b: jnp.where(boundary, a, b), nest, plain)
    m = jax.tree.map(lambda a, b: jnp.where(boundary, a, b), m_new, state.momentum)
    buf = jax.tree.map(lambda b: jnp.where(boundary, jnp.zeros_like(b), b), buf)
    return out, DelayedNesterovState(count=count, momentum=m, buffer=buf)

  return optax.GradientTransformation(init_fn, update_fn)


class AsyncSetup(NamedTuple):
  """What a preset returns: pass as ``Simulator(loss_fn, setup.method, data_fn,
  config=setup.config, outer=setup.outer, ...)``."""

  method: Method
  config: server_lib.AsyncConfig
  outer: Optional[optax.GradientTransformation] = None


def fedasync(
  *,
  alpha: float = 0.6,
  inner_lr: float = 0.1,
  local_steps: int = 1,
  rate: Optional[stale_lib.RateConfig] = None,
  inner: str = "sgd",
  **config_kw,
) -> AsyncSetup:
  """FedAsync (Xie et al. 2019): scheme B, mixing weight ``alpha * s(tau)``.

  Default ``s`` is polynomial with a = 0.5 (one of FedAsync's families); ``alpha = 0.6`` is
  our default.
  """
  rate = rate or stale_lib.RateConfig("polynomial", a=0.5)
  method = get_method(f"avg-{inner}", inner_lr=inner_lr, outer_lr=alpha)
  cfg = server_lib.AsyncConfig(
    scheme="async", local_steps=local_steps, rate=rate, pseudo_gradient="model_diff", **config_kw
  )
  return AsyncSetup(method, cfg)


def fedbuff(
  *,
  buffer_size: int,
  server_lr: float = 1.0,
  server_momentum: float = 0.0,
  inner_lr: float = 0.1,
  local_steps: int = 1,
  inner: str = "sgd",
  **config_kw,
) -> AsyncSetup:
  """FedBuff (Nguyen et al. 2022): buffer K, weights 1/sqrt(1 + tau), server SGD/momentum."""
  if server_momentum:
    method = get_method(
      f"avgm-{inner}", inner_lr=inner_lr, outer_lr=server_lr, momentum=server_momentum
    )
  else:
    method = get_method(f"avg-{inner}", inner_lr=inner_lr, outer_lr=server_lr)
  cfg = server_lib.AsyncConfig(
    scheme="buffered",
    buffer_size=buffer_size,
    local_steps=local_steps,
    rate=stale_lib.RateConfig("polynomial", a=0.5),
    reduction="weights",
    weight_normalization="count",
    **config_kw,
  )
  return AsyncSetup(method, cfg)


def dcasgd(
  *,
  lr: float = 0.1,
  lam: float = 0.04,
  adaptive: bool = False,
  lam0: float = 2.0,
  momentum: float = 0.95,
  **config_kw,
) -> AsyncSetup:
  """DC-ASGD (Zheng et al. 2017), DC-ASGD-c (constant lam) or DC-ASGD-a (adaptive).

  The worker sends one gradient (z = 1, inner SGD with lr 1 so Delta = g); the server
  compensates it and takes an SGD step of ``lr``.
  """
  method = get_method("avg-sgd", inner_lr=1.0, outer_lr=lr)
  comp = comp_lib.CompensationConfig(
    kind="adaptive" if adaptive else "constant", lam=lam, lam0=lam0, momentum=momentum
  )
  cfg = server_lib.AsyncConfig(scheme="async", local_steps=1, compensation=comp, **config_kw)
  return AsyncSetup(method, cfg)


def async_local_sgd(
  *,
  num_workers: int,
  local_steps: int = 8,
  lr: float = 0.7,
  momentum: float = 0.9,
  period: Optional[int] = None,
  inner: str = "sgd",
  inner_lr: Optional[float] = None,
  dynamic: bool = True,
  **config_kw,
) -> AsyncSetup:
  """Async local SGD with Delayed Nesterov and dynamic local updates (Liu et al. 2024).

  ``period`` defaults to N = ``num_workers``; ``lr = 0.7, momentum = 0.9`` are DiLoCo's
  outer defaults (the paper builds on DiLoCo; Liu et al. use an AdamW inner, ``inner='adamw'``).
  """
  method = get_method(f"nesterov-{inner}", inner_lr=inner_lr, outer_lr=lr, momentum=momentum)
  outer = delayed_nesterov(lr, momentum, period or num_workers)
  cfg = server_lib.AsyncConfig(
    scheme="async", local_steps=local_steps, dynamic_local_steps=dynamic, **config_kw
  )
  return AsyncSetup(method, cfg, outer)


PRESETS = {
  "fedasync": fedasync,
  "fedbuff": fedbuff,
  "dcasgd": dcasgd,
  "async_local_sgd": async_local_sgd,
}

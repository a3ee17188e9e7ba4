r"""Server (outer) optimizers in the FedOpt form.

The outer optimizer is fed the averaged pseudo-gradient :math:`\Delta_t` (global minus
local, so it points like a gradient) as if it were a gradient. With
:math:`m_0 = v_0 = 0`:

.. math::

    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\Delta_t \\
    v_t &= \begin{cases}
        v_{t-1} + \Delta_t^2 & \text{Adagrad} \\
        \beta_2 v_{t-1} + (1 - \beta_2)\Delta_t^2 & \text{RMSProp, Adam} \\
        v_{t-1} - (1 - \beta_2)\Delta_t^2 \operatorname{sign}(v_{t-1} - \Delta_t^2) & \text{Yogi}
      \end{cases} \\
    x_{t+1} &= x_t - \eta_t\, m_t / (\sqrt{v_t} + \tau)

:math:`\tau` sits outside the square root, accumulators start at 0 and there is no bias
correction unless ``bias_correction=True`` (then :math:`m_t/(1-\beta_1^t)` and
:math:`v_t/(1-\beta_2^t)`, the latter not for Adagrad). ``b1 = 0`` stores no first
moment (Adagrad and RMSProp by default), so those rules hold one copy of the parameters.

optax's own ``adagrad``/``adam`` differ (eps inside the root for adagrad, initial
accumulator 0.1, adam always bias-corrects), hence these transforms.

References:
  Reddi et al., "Adaptive Federated Optimization", ICLR 2021 (Algorithm 2).
  Zaheer et al., "Adaptive Methods for Nonconvex Optimization" (Yogi), NeurIPS 2018.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from tailopt.schedules import ScalarOrSchedule

_RULES = ("adagrad", "rmsprop", "adam", "yogi")


class ScaleByFedOptState(NamedTuple):
  """``count`` (int32), first moment ``mu`` (``None`` when ``b1 == 0``), second moment ``nu``."""

  count: jax.Array
  mu: Optional[optax.Updates]
  nu: optax.Updates


def _concrete(value) -> Optional[float]:
  """``float(value)`` for a Python or concrete number, ``None`` for a traced value."""
  if isinstance(value, jax.core.Tracer):
    return None
  try:
    return float(value)
  except (TypeError, ValueError):
    return None


def _c(value, like):
  """A hyperparameter (float or array) as a scalar of ``like``'s dtype."""
  return jnp.asarray(value, like.dtype)


def _check(rule: str, name: str, value, ok, what: str):
  v = _concrete(value)
  if v is not None and not (v == v and ok(v)):
    raise ValueError(f"{rule}: {name}={value} {what}.")


def scale_by_fedopt(
  rule: str,
  b1: float = 0.9,
  b2: float = 0.99,
  tau: float = 1e-3,
  bias_correction: bool = False,
  initial_accumulator: float = 0.0,
) -> optax.GradientTransformation:
  """Rescales updates by the FedOpt rule ``rule`` (no learning rate; see module doc).

  Args:
    rule: one of ``'adagrad'``, ``'rmsprop'``, ``'adam'``, ``'yogi'``.
    b1: first-moment decay; 0 keeps no first moment (``m_t = Delta_t``).
    b2: second-moment decay (unused by Adagrad).
    tau: adaptivity ``tau > 0``, added outside the square root.
    bias_correction: divide the moments by ``1 - beta^t``.
    initial_accumulator: ``v_0`` (0 as in the spec; FedOpt's Yogi suggests ``tau**2``).
  """
  if rule not in _RULES:
    raise ValueError(f"Unknown FedOpt rule {rule!r}; choose one of {_RULES}.")
  _check(rule, "b1", b1, lambda v: 0.0 <= v < 1.0, "must be in [0, 1)")
  if rule != "adagrad":
    _check(rule, "b2", b2, lambda v: 0.0 <= v < 1.0, "must be in [0, 1)")
  _check(rule, "tau", tau, lambda v: v >= 0.0, "must be >= 0 (it is added outside the root)")
  _check(rule, "initial_accumulator", initial_accumulator, lambda v: v >= 0.0, "must be >= 0")
  # A first moment is kept unless b1 is the Python number 0: an array b1 (e.g. from
  # optax.inject_hyperparams, traced under jit) keeps it, so the state's structure never
  # depends on a traced value.
  first_moment = not (isinstance(b1, (int, float)) and b1 == 0)

  def init_fn(params):
    nu = jax.tree.map(lambda p: jnp.full_like(p, initial_accumulator), params)
    mu = optax.tree_utils.tree_zeros_like(params) if first_moment else None
    return ScaleByFedOptState(count=jnp.zeros([], jnp.int32), mu=mu, nu=nu)

  def update_fn(updates, state, params=None):
    del params
    count = optax.safe_increment(state.count)
    sq = jax.tree.map(jnp.square, updates)
    if rule == "adagrad":
      nu = jax.tree.map(lambda v, s: v + s, state.nu, sq)
    elif rule == "yogi":
      nu = jax.tree.map(lambda v, s: v - _c(1.0 - b2, v) * s * jnp.sign(v - s), state.nu, sq)
    else:
      nu = jax.tree.map(lambda v, s: _c(b2, v) * v + _c(1.0 - b2, v) * s, state.nu, sq)
    if first_moment:
      mu = jax.tree.map(lambda m, g: _c(b1, m) * m + _c(1.0 - b1, m) * g, state.mu, updates)
    else:
      mu = None
    m_hat = updates if mu is None else mu
    v_hat = nu
    if bias_correction:
      t = count.astype(jnp.float32)
      bb1, bb2 = jnp.asarray(b1, jnp.float32), jnp.asarray(b2, jnp.float32)
      if mu is not None:
        m_hat = jax.tree.map(lambda m: m / (1.0 - bb1**t).astype(m.dtype), mu)
      if rule != "adagrad":
        v_hat = jax.tree.map(lambda v: v / (1.0 - bb2**t).astype(v.dtype), nu)
    new_updates = jax.tree.map(
      lambda m, v: (m / (jnp.sqrt(v) + jnp.asarray(tau, v.dtype))).astype(m.dtype), m_hat, v_hat
    )
    return new_updates, ScaleByFedOptState(count=count, mu=mu, nu=nu)

  return optax.GradientTransformation(init_fn, update_fn)


def _fedopt(rule, learning_rate, b1, b2, tau, bias_correction, initial_accumulator):
  return optax.chain(
    scale_by_fedopt(
      rule,
      b1=b1,
      b2=b2,
      tau=tau,
      bias_correction=bias_correction,
      initial_accumulator=initial_accumulator,
    ),
    optax.scale_by_learning_rate(learning_rate),
  )


def fedopt_adagrad(
  learning_rate: ScalarOrSchedule,
  b1: float = 0.0,
  tau: float = 1e-3,
  bias_correction: bool = False,
  initial_accumulator: float = 0.0,
) -> optax.GradientTransformation:
  """FedAdagrad: ``v += Delta^2``; ``x -= lr * m / (sqrt(v) + tau)``. See module doc."""
  return _fedopt("adagrad", learning_rate, b1, 0.0, tau, bias_correction, initial_accumulator)


def fedopt_rmsprop(
  learning_rate: ScalarOrSchedule,
  b1: float = 0.0,
  b2: float = 0.99,
  tau: float = 1e-3,
  bias_correction: bool = False,
  initial_accumulator: float = 0.0,
) -> optax.GradientTransformation:
  """FedRMSProp: ``v = b2 v + (1-b2) Delta^2``; ``x -= lr * m / (sqrt(v) + tau)``."""
  return _fedopt("rmsprop", learning_rate, b1, b2, tau, bias_correction, initial_accumulator)


def fedopt_adam(
  learning_rate: ScalarOrSchedule,
  b1: float = 0.9,
  b2: float = 0.99,
  tau: float = 1e-3,
  bias_correction: bool = False,
  initial_accumulator: float = 0.0,
) -> optax.GradientTransformation:
  """FedAdam (Reddi et al. 2021): Adam moments of Delta, tau outside the root."""
  return _fedopt("adam", learning_rate, b1, b2, tau, bias_correction, initial_accumulator)


def fedopt_yogi(
  learning_rate: ScalarOrSchedule,
  b1: float = 0.9,
  b2: float = 0.99,
  tau: float = 1e-3,
  bias_correction: bool = False,
  initial_accumulator: float = 0.0,
) -> optax.GradientTransformation:
  """FedYogi: ``v -= (1-b2) Delta^2 sign(v - Delta^2)``, otherwise as FedAdam."""
  return _fedopt("yogi", learning_rate, b1, b2, tau, bias_correction, initial_accumulator)

"""Schedules for learning rates and clipping thresholds.

TailOPT indexes every learning rate and clipping threshold by the round ``t >= 1``
with a power law (Lee, Zaheer & Li, 2025, Algorithm 1; the authors' reference code):

.. math::

    \\eta_t = \\eta_0 t^{\\nu}, \\qquad d_t = d_0 t^{\\gamma}, \\qquad u_t = u_0 t^{\\zeta}.

Every schedule here is an ordinary optax schedule (a function of the 0-based step
``count``), so any optax schedule can be used wherever a power law can.

Inner optimizers run ``z`` local steps per round and their ``count`` advances once per
local step. By default TailOPT holds inner schedules fixed through a round
[ref-code]; :func:`round_indexed` converts a round-indexed schedule into the step-indexed
form an inner transform sees. Step indexing (a plain schedule) is the option.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import optax

Schedule = Callable[[jnp.ndarray], jnp.ndarray]
ScalarOrSchedule = Union[float, int, jnp.ndarray, Schedule]


def power_law(init_value: float, exponent: float = 0.0) -> Schedule:
  """``init_value * t ** exponent`` with ``t = count + 1`` (so the first step has t = 1).

  Args:
    init_value: the value at t = 1 (``eta_0``, ``d_0`` or ``u_0``).
    exponent: the power (``nu``, ``gamma`` or ``zeta``); 0 gives a constant.

  Returns:
    An optax schedule.
  """
  if exponent == 0.0:
    return optax.constant_schedule(init_value)

  def schedule(count):
    t = jnp.asarray(count, jnp.float32) + 1.0
    return init_value * t**exponent

  return schedule


def round_indexed(schedule: ScalarOrSchedule, steps_per_round: int) -> ScalarOrSchedule:
  """Holds ``schedule`` fixed through each round of ``steps_per_round`` local steps.

  The returned schedule maps an inner step count ``c`` to ``schedule(c // z)``: step
  ``c`` belongs to round ``c // z`` (0-based), so a power law sees ``t = round + 1``.
  Constants are returned unchanged.

  Args:
    schedule: a float or an optax schedule indexed by the (0-based) round.
    steps_per_round: ``z``, the number of local steps in a round.
  """
  if steps_per_round < 1:
    raise ValueError(
      f"steps_per_round must be >= 1, got {steps_per_round}; it is the number of local"
      " steps z in a round."
    )
  if not callable(schedule):
    return schedule

  def by_round(count):
    return schedule(jnp.asarray(count) // steps_per_round)

  return by_round


def evaluate(value: ScalarOrSchedule, count) -> jnp.ndarray:
  """``value(count)`` for a schedule, ``value`` itself for a constant."""
  return value(count) if callable(value) else jnp.asarray(value)


def is_schedule(value: ScalarOrSchedule) -> bool:
  return callable(value)


ROUND_INDEX = "round_index"
STEP_INDEX = "step_index"
INDICES = {"round": ROUND_INDEX, "step": STEP_INDEX}


class IndexedHyperparamsState(NamedTuple):
  """State of :func:`indexed_hyperparams`.

  ``count`` is this transform's own update count (never rewritten); ``hyperparams`` the
  values used by the last update (for monitoring, as ``optax.inject_hyperparams``);
  ``inner_state`` the wrapped transform's state.
  """

  count: jax.Array
  hyperparams: dict
  inner_state: Any


def indexed_hyperparams(
  factory: Callable[..., optax.GradientTransformation], index: str = "round"
) -> Callable[..., optax.GradientTransformation]:
  r"""Like ``optax.inject_hyperparams``, with schedules of an index the caller passes.

  ``indexed_hyperparams(optax.sgd)(learning_rate=tailopt.power_law(0.1, -0.5))`` is an
  optax transform whose update evaluates every schedule argument at the index given as
  the extra argument ``round_index`` (``index='round'``) or ``step_index``
  (``index='step'``). The TailOPT round and the asynchronous simulator pass both to every
  inner and outer update (``round_index``: rounds done, 0-based; ``step_index``: global
  inner step), so a schedule sees the global round even when the inner state is reset
  each round, without rewriting any optimizer's own counter. Called without the extra
  argument (plain optax use) a schedule sees this transform's own update count.

  Args:
    factory: a function returning an ``optax.GradientTransformation`` from keyword
      hyperparameters (``optax.sgd``, :func:`tailopt.bi_clip`, ...).
    index: ``'round'`` or ``'step'``: which extra argument indexes the schedules.

  Returns:
    A function of the factory's keyword arguments; callables among them are schedules,
    the rest are passed through unchanged.
  """
  if index not in INDICES:
    raise ValueError(f"index={index!r}; use 'round' or 'step'.")
  key = INDICES[index]

  def wrapped(**hyperparams) -> optax.GradientTransformationExtraArgs:
    scheduled = {k: v for k, v in hyperparams.items() if callable(v)}
    fixed = {k: v for k, v in hyperparams.items() if not callable(v)}

    def build(idx):
      values = {k: jnp.asarray(fn(idx), jnp.float32) for k, fn in scheduled.items()}
      return optax.with_extra_args_support(factory(**fixed, **values)), values

    def init_fn(params):
      tx, values = build(jnp.zeros([], jnp.int32))
      return IndexedHyperparamsState(jnp.zeros([], jnp.int32), values, tx.init(params))

    def update_fn(updates, state, params=None, **extra_args):
      idx = extra_args.get(key)
      idx = state.count if idx is None else jnp.asarray(idx, jnp.int32)
      tx, values = build(idx)
      updates, inner = tx.update(updates, state.inner_state, params, **extra_args)
      return updates, IndexedHyperparamsState(optax.safe_increment(state.count), values, inner)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)

  return wrapped

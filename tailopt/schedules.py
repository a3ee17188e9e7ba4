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

from typing import Callable, Union

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
        " steps z in a round.")
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

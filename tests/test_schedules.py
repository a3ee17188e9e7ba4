import jax.numpy as jnp
import numpy as np
import pytest

from tailopt import schedules


def test_power_law_hand_values():
  s = schedules.power_law(0.5, -0.5)  # 0.5 / sqrt(t), t = count + 1
  np.testing.assert_allclose(
    [s(c) for c in range(4)], [0.5, 0.5 / np.sqrt(2), 0.5 / np.sqrt(3), 0.25], rtol=1e-6
  )
  assert float(schedules.power_law(0.3)(17)) == pytest.approx(0.3)


def test_round_indexed_holds_value_through_a_round():
  s = schedules.round_indexed(schedules.power_law(1.0, -1.0), 3)
  got = [float(s(jnp.asarray(c))) for c in range(7)]
  np.testing.assert_allclose(got, [1, 1, 1, 0.5, 0.5, 0.5, 1 / 3], rtol=1e-6)
  assert schedules.round_indexed(0.7, 3) == 0.7


def test_round_indexed_rejects_bad_z():
  with pytest.raises(ValueError, match="steps_per_round must be >= 1"):
    schedules.round_indexed(lambda c: c, 0)

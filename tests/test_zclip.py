"""tailopt.zclip against a hand computation (warm-up statistics, a clipped spike, the EMA)."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jax
import tailopt


@pytest.fixture(params=[False, True], ids=["x32", "x64"])
def x64(request):
  old = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", request.param)
  yield request.param
  jax.config.update("jax_enable_x64", old)


def _steps(tx, grads):
  state = tx.init({"w": jnp.zeros(2)})
  outs = []
  for g in grads:
    u, state = tx.update({"w": jnp.asarray(g, jnp.float32)}, state)
    outs.append((np.asarray(u["w"]), float(state.mean), float(state.var)))
  return outs


def test_zclip_matches_hand_computation(x64):
  tx = tailopt.zclip(z_threshold=2.0, ema_decay=0.5, warmup_steps=2)
  out = _steps(tx, [[3.0, 4.0], [0.0, 7.0], [0.0, 20.0], [0.0, 7.5]])
  # Warm-up: norms 5 and 7 pass; mean 6, population variance 1.
  np.testing.assert_allclose(out[0][0], [3.0, 4.0])
  np.testing.assert_allclose(out[1][0], [0.0, 7.0])
  np.testing.assert_allclose(out[1][1:], [6.0, 1.0], rtol=1e-6)
  # Norm 20: z = (20 - 6) / 1 = 14 > 2 -> cut to 6 + 2 * 1 = 8; EMA of the kept norm 8:
  # mean 0.5 * 6 + 0.5 * 8 = 7, var 0.5 * 1 + 0.5 * (8 - 7)^2 = 1.
  np.testing.assert_allclose(out[2][0], [0.0, 8.0], rtol=1e-6)
  np.testing.assert_allclose(out[2][1:], [7.0, 1.0], rtol=1e-6)
  # Norm 7.5: z = 0.5 -> kept; mean 7.25, var 0.5 + 0.5 * 0.25^2 = 0.53125.
  np.testing.assert_allclose(out[3][0], [0.0, 7.5], rtol=1e-6)
  np.testing.assert_allclose(out[3][1:], [7.25, 0.53125], rtol=1e-6)


def test_zclip_warmup_never_clips_and_nan_leaves_statistics(x64):
  tx = tailopt.zclip(z_threshold=1.0, ema_decay=0.5, warmup_steps=3)
  out = _steps(tx, [[1.0, 0.0], [100.0, 0.0], [0.0, 1.0]])
  np.testing.assert_allclose(out[1][0], [100.0, 0.0])  # a spike in the warm-up passes
  np.testing.assert_allclose(out[2][1], 34.0, rtol=1e-6)  # plain mean of 1, 100, 1
  state = tx.init({"w": jnp.zeros(2)})
  u, s = tx.update({"w": jnp.array([jnp.nan, 1.0])}, state)
  assert float(s.mean) == 0.0 and float(s.var) == 0.0 and int(s.count) == 1


def test_zclip_in_sgd_chain_and_bad_arguments():
  tx = optax.chain(tailopt.zclip(warmup_steps=1), optax.sgd(0.1))
  u, _ = tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.zeros(2)}))
  np.testing.assert_allclose(u["w"], [-0.1, -0.1], rtol=1e-6)
  for kw, field in (
    (dict(z_threshold=0.0), "z_threshold"),
    (dict(ema_decay=1.0), "ema_decay"),
    (dict(warmup_steps=0), "warmup_steps"),
  ):
    with pytest.raises(ValueError, match=field):
      tailopt.zclip(**kw)

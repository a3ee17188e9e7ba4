"""BiClip and L2 clipping against hand-computed values."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import tailopt

INF = math.inf


def _apply(tx, x):
  state = tx.init(x)
  out, _ = tx.update(x, state)
  return out


def test_bi_clip_hand_vector():
  x = jnp.array([0.0, 0.005, -0.005, 0.01, -0.01, 0.5, -0.5, 1.0, -1.0, 2.0, -3.0, INF, -INF])
  want = [0.0, 0.01, -0.01, 0.01, -0.01, 0.5, -0.5, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0]
  np.testing.assert_array_equal(_apply(tailopt.bi_clip(1.0, 0.01), x), np.float32(want))


def test_bi_clip_nan_becomes_zero():
  x = jnp.array([jnp.nan, 2.0, 0.001])
  np.testing.assert_array_equal(_apply(tailopt.bi_clip(1.0, 0.1), x), np.float32([0.0, 1.0, 0.1]))


def test_bi_clip_special_cases():
  x = jnp.array([-5.0, -0.2, 0.0, 0.3, 7.0])
  # d = u: u * sign(x) (signSGD), zero stays zero.
  np.testing.assert_array_equal(_apply(tailopt.bi_clip(0.5, 0.5), x), [-0.5, -0.5, 0, 0.5, 0.5])
  # d = 0: plain value clipping.
  np.testing.assert_array_equal(
    _apply(tailopt.bi_clip(1.0, 0.0), x), np.float32([-1, -0.2, 0, 0.3, 1])
  )
  # d = 0, u = inf: identity.
  np.testing.assert_array_equal(_apply(tailopt.bi_clip(INF, 0.0), x), x)


def test_bi_clip_ties_pass_unchanged():
  x = jnp.array([0.25, -0.25, 4.0, -4.0])
  np.testing.assert_array_equal(_apply(tailopt.bi_clip(4.0, 0.25), x), x)


def test_bi_clip_pytree_and_dtype():
  tree = {"a": jnp.array([3.0, -0.001], jnp.bfloat16), "b": {"c": jnp.array([0.5])}}
  out = _apply(tailopt.bi_clip(1.0, 0.01), tree)
  assert out["a"].dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out["a"], np.float32), [1.0, -0.01], rtol=1e-2)
  np.testing.assert_array_equal(out["b"]["c"], [0.5])


@pytest.mark.parametrize(
  "upper,lower,msg",
  [
    (1.0, 2.0, "lower=2.0 > upper=1.0"),
    (-1.0, 0.0, "upper=-1.0 is negative"),
    (1.0, -0.1, "lower=-0.1 is negative"),
    ("big", 0.0, "must be a float or an optax schedule"),
  ],
)
def test_bi_clip_bad_thresholds(upper, lower, msg):
  with pytest.raises((ValueError, TypeError), match=msg):
    tailopt.bi_clip(upper, lower)


def test_constant_thresholds_state_has_no_arrays():
  state = tailopt.bi_clip(1.0, 0.1).init({"w": jnp.ones(3)})
  assert jax.tree.leaves(state) == []
  state = tailopt.l2_clip(1.0, 0.1).init({"w": jnp.ones(3)})
  assert jax.tree.leaves(state) == []


def test_bi_clip_schedule_thresholds_follow_count():
  # u_t = 2 * t^-1 with t = count + 1: u = 2, 1, 2/3.
  tx = tailopt.bi_clip(tailopt.power_law(2.0, -1.0), 0.0)
  x = jnp.array([10.0])
  state = tx.init(x)
  outs = []
  for _ in range(3):
    out, state = tx.update(x, state)
    outs.append(float(out[0]))
  np.testing.assert_allclose(outs, [2.0, 1.0, 2.0 / 3.0], rtol=1e-6)
  assert int(state.count) == 3


def test_bi_clip_in_user_chain_under_jit():
  tx = optax.chain(tailopt.bi_clip(1.0, 0.1), optax.sgd(0.5))
  params = jnp.array([1.0, 1.0, 1.0])
  grads = jnp.array([5.0, 0.01, -0.3])
  state = tx.init(params)
  updates, _ = jax.jit(tx.update)(grads, state, params)
  np.testing.assert_allclose(optax.apply_updates(params, updates), [0.5, 0.95, 1.15])


def test_bi_clip_inside_inject_hyperparams():
  tx = optax.inject_hyperparams(tailopt.bi_clip)(upper=1.0, lower=0.1)
  x = jnp.array([5.0, 0.01, -0.3])
  state = tx.init(x)
  out, state = jax.jit(tx.update)(x, state)
  np.testing.assert_allclose(out, [1.0, 0.1, -0.3])
  state.hyperparams["upper"] = jnp.asarray(0.2)
  out, _ = jax.jit(tx.update)(x, state)
  np.testing.assert_allclose(out, [0.2, 0.1, -0.2])


def test_l2_clip_hand_values():
  tree = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([4.0])}  # norm 5
  out = _apply(tailopt.l2_clip(1.0), tree)
  np.testing.assert_allclose(out["a"], [0.6, 0.0])
  np.testing.assert_allclose(out["b"], [0.8])
  out = _apply(tailopt.l2_clip(10.0), tree)
  np.testing.assert_allclose(out["a"], [3.0, 0.0])
  np.testing.assert_allclose(out["b"], [4.0])
  out = _apply(tailopt.l2_clip(20.0, 10.0), tree)  # raised to norm 10
  np.testing.assert_allclose(out["a"], [6.0, 0.0])
  np.testing.assert_allclose(out["b"], [8.0])
  zero = {"a": jnp.zeros(2), "b": jnp.zeros(1)}
  out = _apply(tailopt.l2_clip(20.0, 10.0), zero)
  assert float(tailopt.global_norm(out)) == 0.0


def test_l2_clip_matches_optax_one_sided():
  x = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.array([-2.0])}
  ours = _apply(tailopt.l2_clip(1.5), x)
  ref = _apply(optax.clip_by_global_norm(1.5), x)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), ours, ref)


def test_l2_clip_nonfinite():
  out = _apply(tailopt.l2_clip(2.0), jnp.array([jnp.nan, 3.0, 4.0]))
  np.testing.assert_allclose(out, [0.0, 1.2, 1.6], rtol=1e-6)
  out = _apply(tailopt.l2_clip(2.0), jnp.array([-INF, 3.0, 4.0]))
  np.testing.assert_allclose(out, [-2.0, 0.0, 0.0])


def test_l2_clip_bfloat16_keeps_dtype():
  out = _apply(tailopt.l2_clip(1.0), jnp.array([3.0, 4.0], jnp.bfloat16))
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out, np.float32), [0.6, 0.8], rtol=1e-2)


def test_clip_fractions_from_what_the_stage_did():
  x = {"a": jnp.array([0.0, 0.001, 0.5, 2.0]), "b": jnp.array([-3.0, -0.002, 0.1, 0.2])}
  y = jax.tree.map(lambda v: tailopt.bi_clip_array(v, 1.0, 0.01), x)
  above, below = tailopt.clip_fractions(x, y)
  assert float(above) == pytest.approx(2 / 8) and float(below) == pytest.approx(2 / 8)
  # A strided subsample estimates large leaves: 1 in 4 coordinates is above 1.
  big = jnp.tile(jnp.array([5.0, 0.5, 0.5, 0.5]), 10_000)
  above, _ = tailopt.clip_fractions(big, tailopt.bi_clip_array(big, 1.0, 0.0), 4096)
  assert float(above) == pytest.approx(0.25, abs=0.01)


@pytest.mark.parametrize(
  "clip,above,below",
  [
    (lambda: tailopt.bi_clip(1.0, 0.01), 2 / 8, 2 / 8),
    (lambda: optax.clip(1.0), 2 / 8, 0.0),  # optax's own value clip
    (lambda: optax.clip_by_global_norm(1.0), 7 / 8, 0.0),  # every nonzero coordinate
    (lambda: tailopt.l2_clip(100.0, 50.0), 0.0, 7 / 8),  # raised to norm 50
  ],
)
def test_monitor_clip_reports_any_clipping_transform(clip, above, below):
  x = {"a": jnp.array([0.0, 0.001, 0.5, 2.0]), "b": jnp.array([-3.0, -0.002, 0.1, 0.2])}
  tx = optax.chain(tailopt.monitor_clip(clip()), optax.sgd(0.1))
  plain = optax.chain(clip(), optax.sgd(0.1))
  u, state = jax.jit(tx.update)(x, tx.init(x), x)
  u_plain, _ = plain.update(x, plain.init(x), x)
  jax.tree.map(np.testing.assert_array_equal, u, u_plain)  # updates unchanged
  assert float(optax.tree.get(state, "clip_above")) == pytest.approx(above)
  assert float(optax.tree.get(state, "clip_below")) == pytest.approx(below)
  got = tailopt.measurements(state, "inner_")
  assert set(got) == {"inner_clip_above", "inner_clip_below"}


def test_measurements_include_optax_snapshots_and_number_repeats():
  tx = optax.chain(
    optax.snapshot("gnorm", optax.tree.norm),
    tailopt.monitor_clip(tailopt.bi_clip(1.0)),
    tailopt.monitor_clip(tailopt.bi_clip(0.5)),
    optax.snapshot("vec", lambda u: u),  # not a scalar: skipped
    optax.sgd(1.0),
  )
  g = jnp.array([3.0, 4.0])
  _, state = tx.update(g, tx.init(g), g)
  got = tailopt.measurements(state, "outer_")
  assert sorted(got) == [
    "outer_clip_above",
    "outer_clip_above_1",
    "outer_clip_below",
    "outer_clip_below_1",
    "outer_gnorm",
  ]
  assert float(got["outer_gnorm"]) == pytest.approx(5.0)


def test_monitor_clip_elementwise_matches_generic():
  """The elementwise path (clip applied to the sampled inputs only) gives the generic
  path's fractions, sampled (a leaf > 4096 coordinates) and exact."""
  r = np.random.default_rng(0)  # host draws: a jitted 2-D random draw compiles for seconds
  g = {
    "a": jnp.asarray(r.standard_cauchy((100, 70)), jnp.float32),
    "b": jnp.asarray(r.normal(size=33) * 0.01, jnp.float32),
  }
  clip = tailopt.bi_clip(upper=1.0, lower=0.005)
  fast, slow = tailopt.monitor_clip(clip, elementwise=True), tailopt.monitor_clip(clip)
  uf, sf = jax.jit(lambda g: fast.update(g, fast.init(g)))(g)
  us, ss = jax.jit(lambda g: slow.update(g, slow.init(g)))(g)
  jax.tree.map(np.testing.assert_array_equal, uf, us)
  for k in ("clip_above", "clip_below"):
    assert float(sf.measurements[k]) == float(ss.measurements[k]) > 0

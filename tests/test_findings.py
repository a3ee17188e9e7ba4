"""Regression tests for the five findings of the core review (each failed before its fix)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import tailopt


def _quadratic(params, batch):
  del batch
  return 0.5 * jnp.sum(jnp.square(params["w"]))


def _one_client_round(method, **kw):
  mesh = tailopt.client_mesh(1)
  return tailopt.build_round(_quadratic, method, local_steps=1, num_clients=1, mesh=mesh, **kw)


# 1. A reset equals a fresh inner.init: Adam's bias correction restarts every round.
def test_reset_inner_adam_takes_a_fresh_first_step_every_round():
  method = tailopt.get_method("avg-adam", inner_lr=0.1, outer_lr=1.0)
  rnd = _one_client_round(method, reset_inner_state=True)
  state = rnd.init({"w": jnp.full((1,), 5.0)})
  batch = {"x": jnp.zeros((1, 1, 1))}
  w = [5.0]
  for _ in range(3):
    state, _ = rnd(state, batch)
    w.append(float(state.params["w"][0]))
  steps = -np.diff(w)
  # A fresh Adam's first step is lr * g / (|g| + eps) = 0.1 every round (the bug gave
  # 0.100, 0.074, 0.064 because the counts were set to the global step).
  np.testing.assert_allclose(steps, [0.1, 0.1, 0.1], rtol=1e-5)


def test_reset_state_equals_fresh_init_for_any_counter():
  # The inner state seen by the first step of every round is exactly inner.init(x_t).
  seen = []

  def spy_init(params):
    return optax.adam(0.1).init(params)

  tx = optax.GradientTransformation(spy_init, optax.adam(0.1).update)
  rnd = _one_client_round(tailopt.Method(inner=tx, outer=optax.sgd(1.0)), reset_inner_state=True)
  state = rnd.init({"w": jnp.full((1,), 5.0)})
  for _ in range(4):
    state, _ = rnd(state, {"x": jnp.zeros((1, 1, 1))})
    seen.append(int(optax.tree.get(state.inner_state, "count")[0]))
  assert seen == [1, 1, 1, 1]  # one step since a fresh init, every round


def test_round_indexed_inner_schedule_sees_the_round_after_reset():
  # lr_t = 0.1 * t^-1 by round: after a reset the schedule must still see the round.
  method = tailopt.get_method("avg-sgd", inner_lr=0.1, inner_lr_exponent=-1.0, outer_lr=1.0)
  rnd = _one_client_round(method, reset_inner_state=True)
  state = rnd.init({"w": jnp.full((1,), 1.0)})
  w = [1.0]
  for _ in range(3):
    state, _ = rnd(state, {"x": jnp.zeros((1, 1, 1))})
    w.append(float(state.params["w"][0]))
  # w <- w (1 - lr_t): lr = 0.1, 0.05, 0.0333
  expected = [1.0]
  for t in (1, 2, 3):
    expected.append(expected[-1] * (1 - 0.1 / t))
  np.testing.assert_allclose(w, expected, rtol=1e-6)


# 2. fedopt_* inside optax.inject_hyperparams under jax.jit.
@pytest.mark.parametrize(
  "factory",
  [tailopt.fedopt_adagrad, tailopt.fedopt_rmsprop, tailopt.fedopt_adam, tailopt.fedopt_yogi],
)
def test_fedopt_in_inject_hyperparams_under_jit(factory):
  tx = optax.inject_hyperparams(factory)(learning_rate=0.1)
  params = {"w": jnp.ones(3)}
  state = jax.jit(tx.init)(params)
  g = {"w": jnp.array([1.0, -2.0, 0.5])}
  u, state = jax.jit(tx.update)(g, state, params)
  ref = factory(0.1)
  u_ref, _ = ref.update(g, ref.init(params), params)
  np.testing.assert_allclose(u["w"], u_ref["w"], rtol=1e-6)
  # And the betas themselves may be injected.
  kw = {} if factory is tailopt.fedopt_adagrad else {"b2": 0.9}
  tx2 = optax.inject_hyperparams(factory)(learning_rate=0.1, b1=0.5, **kw)
  s2 = jax.jit(tx2.init)(params)
  u2, _ = jax.jit(tx2.update)(g, s2, params)
  ref2 = factory(0.1, b1=0.5, **kw)
  u2_ref, _ = ref2.update(g, ref2.init(params), params)
  np.testing.assert_allclose(u2["w"], u2_ref["w"], rtol=1e-6)


# 3. A huge but finite gradient is not counted as non-finite.
def test_huge_finite_gradient_is_not_nonfinite():
  def loss(params, batch):
    del batch
    return 3e38 * (params["a"][0] + params["a"][1])  # gradient 3e38 in two coordinates

  run = tailopt.make_local_run(loss, optax.sgd(0.0))
  params = {"a": jnp.zeros(2)}
  res = jax.jit(run)(params, optax.sgd(0.0).init(params), None, {"x": jnp.zeros((2, 1))})
  assert float(res.metrics["nonfinite_frac"]) == 0.0

  def bad(params, batch):
    del batch
    return jnp.sum(params["a"]) * jnp.inf

  res = jax.jit(tailopt.make_local_run(bad, optax.sgd(0.0)))(
    params, optax.sgd(0.0).init(params), None, {"x": jnp.zeros((2, 1))}
  )
  assert float(res.metrics["nonfinite_frac"]) == 1.0


@pytest.mark.parametrize(
  "leaves, expected",
  [
    ([[1.0, -np.inf]], 1.0),
    ([[np.nan, 0.0]], 1.0),
    ([[np.inf], [np.nan]], 1.0),
    ([[3e38, 3e38, -3e38]], 0.0),  # huge finite: no overflow to inf
    ([[0.0], [1e-45]], 0.0),
  ],
)
def test_nonfinite_per_leaf(leaves, expected):
  from tailopt.local import nonfinite

  for dtype in (jnp.float32, jnp.bfloat16):
    tree = {f"l{i}": jnp.asarray(v, jnp.float32).astype(dtype) for i, v in enumerate(leaves)}
    if dtype == jnp.bfloat16 and expected == 0.0:
      tree = {k: jnp.clip(v, -1e38, 1e38) for k, v in tree.items()}  # bf16 range
    assert float(jax.jit(nonfinite)(tree)) == expected


# 4. float64 parameters are averaged in float64.
def test_float64_params_are_averaged_in_float64():
  with jax.enable_x64(True):

    def loss(params, batch):
      return jnp.sum(params["w"] * batch["g"])

    rnd = tailopt.build_round(
      loss,
      tailopt.get_method("fedavg", inner_lr=1.0),
      local_steps=1,
      num_clients=8,
      mesh=tailopt.client_mesh(8),
    )
    w0 = jnp.full((4,), 1.0, jnp.float64)
    state = rnd.init({"w": w0})
    rng = np.random.default_rng(0)
    g = rng.normal(size=(8, 1, 4)) * (1 + 1e-9 * rng.normal(size=(8, 1, 4)))
    state, _ = rnd(state, {"g": jnp.asarray(g, jnp.float64)})
    assert state.params["w"].dtype == jnp.float64
    expected = np.asarray(w0) - g[:, 0].mean(axis=0)
    np.testing.assert_allclose(np.asarray(state.params["w"]), expected, rtol=0, atol=1e-14)


# 5. Clear errors instead of silent NaN or a segfault.
@pytest.mark.parametrize(
  "kw,field",
  [
    (dict(inner_lr=-0.1), "inner_lr"),
    (dict(inner_lr=float("nan")), "inner_lr"),
    (dict(outer_lr=float("inf")), "outer_lr"),
    (dict(momentum=1.0), "momentum"),
    (dict(momentum=1.5), "momentum"),
    (dict(weight_decay=-1.0), "weight_decay"),
  ],
)
def test_get_method_rejects_bad_values(kw, field):
  name = "diloco" if field in ("momentum", "weight_decay") else "fedavg"
  with pytest.raises(ValueError, match=field):
    tailopt.get_method(name, **kw)


@pytest.mark.parametrize(
  "weights,msg",
  [
    (np.zeros(8), "all zero"),
    (np.array([1.0] * 7 + [-1.0]), "negative"),
    (np.array([1.0] * 7 + [np.nan]), "finite"),
  ],
)
def test_bad_aggregation_weights_raise(weights, msg):
  rnd = tailopt.build_round(_quadratic, tailopt.get_method("fedavg"), local_steps=1, num_clients=8)
  state = rnd.init({"w": jnp.ones(2)})
  with pytest.raises(ValueError, match=msg):
    rnd(state, {"x": jnp.zeros((8, 1, 1))}, weights=weights)


def test_reusing_a_donated_state_is_a_clear_error():
  rnd = tailopt.build_round(_quadratic, tailopt.get_method("adam2"), local_steps=1, num_clients=8)
  state = rnd.init({"w": jnp.ones(2)})
  batch = {"x": jnp.zeros((8, 1, 1))}
  new_state, _ = rnd(state, batch)
  with pytest.raises(ValueError, match="donated.*donate=False"):
    rnd(state, batch)
  rnd(new_state, batch)  # the returned state works


def test_simulator_reset_is_a_fresh_inner_init():
  from tailopt import asynchronous as A

  def data_fn(worker, job, key):
    del worker, job, key
    return {"x": jnp.zeros((1, 1))}

  method = tailopt.get_method("avg-adam", inner_lr=0.1, outer_lr=1.0)
  sim = A.Simulator(
    _quadratic,
    method,
    data_fn,
    clock=A.ClockConfig(num_workers=1),
    config=A.AsyncConfig(scheme="buffered", buffer_size=1, local_steps=1, reset_inner_state=True),
    num_steps=3,
  )
  state = sim.init({"w": jnp.full((1,), 5.0)})
  w = [5.0]
  for _ in range(3):
    state, _ = sim.run(state, 1)
    w.append(float(state.params["w"][0]))
  np.testing.assert_allclose(-np.diff(w), [0.1, 0.1, 0.1], rtol=1e-5)


def test_reset_with_monitored_clip_state_over_several_devices():
  # A reset inner state whose leaves do not depend on the params (clip statistics) must
  # still run under shard_map over 8 devices.
  rnd = tailopt.build_round(
    _quadratic,
    tailopt.get_method("bi2clip"),
    local_steps=2,
    num_clients=8,
    reset_inner_state=True,
    participation=4,
  )
  state = rnd.init({"w": jnp.ones(3)})
  state, metrics = rnd(state, {"x": jnp.zeros((8, 2, 1))})
  assert float(metrics["participants"]) == 4.0


@pytest.mark.parametrize("reset", [False, True])
def test_scheduled_method_runs_in_an_eight_device_round(reset):
  method = tailopt.get_method(
    "bi2clip",
    inner_lr=0.1,
    inner_lr_exponent=-0.5,
    inner_upper_exponent=-0.5,
    outer_upper_exponent=-0.5,
  )
  rnd = tailopt.build_round(
    _quadratic, method, local_steps=2, num_clients=8, reset_inner_state=reset
  )
  state = rnd.init({"w": jnp.ones(3)})
  for _ in range(2):
    state, _ = rnd(state, {"x": jnp.zeros((8, 2, 1))})
  assert np.isfinite(np.asarray(state.params["w"])).all()

"""The transform contract, in the manner of optax's ``contrib/_common_test.py``.

Every transform factory of tailopt and the inner and outer transform of every
``get_method`` pair: jit; float32 and bfloat16 kept; state structure stable across
updates; ``optax.inject_hyperparams`` on every float argument under jit; schedules
accepted; inside ``optax.MultiSteps`` and a user's ``optax.chain``; extra arguments
accepted. Also pins the metric names the round and the simulator emit.
"""

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import tailopt
from tailopt import asynchronous as A

# name: (factory, float keyword arguments, positional/static arguments)
FACTORIES = {
  "bi_clip": (tailopt.bi_clip, dict(upper=1.0, lower=0.01), {}),
  "l2_clip": (tailopt.l2_clip, dict(upper=1.0, lower=0.1), {}),
  "monitor_clip": (
    lambda upper, lower: tailopt.monitor_clip(tailopt.bi_clip(upper, lower)),
    dict(upper=1.0, lower=0.01),
    {},
  ),
  "inject_noise": (tailopt.inject_noise, dict(scale=0.5, alpha=1.5), dict(distribution="stable")),
  "scale_by_fedopt": (tailopt.scale_by_fedopt, dict(b1=0.9, b2=0.99, tau=1e-3), dict(rule="adam")),
  "fedopt_adagrad": (tailopt.fedopt_adagrad, dict(learning_rate=0.1, b1=0.5, tau=1e-3), {}),
  "fedopt_rmsprop": (tailopt.fedopt_rmsprop, dict(learning_rate=0.1, b2=0.9, tau=1e-3), {}),
  "fedopt_adam": (tailopt.fedopt_adam, dict(learning_rate=0.1, b1=0.9, b2=0.99), {}),
  "fedopt_yogi": (tailopt.fedopt_yogi, dict(learning_rate=0.1, b1=0.9, b2=0.99), {}),
  "indexed_hyperparams": (tailopt.indexed_hyperparams(optax.sgd), dict(learning_rate=0.1), {}),
}
# Arguments that may be schedules (of the count, or of the round for indexed_hyperparams).
SCHEDULABLE = {
  "bi_clip": ("upper", "lower"),
  "l2_clip": ("upper", "lower"),
  "monitor_clip": ("upper", "lower"),
  "inject_noise": ("scale",),
  "fedopt_adagrad": ("learning_rate",),
  "fedopt_rmsprop": ("learning_rate",),
  "fedopt_adam": ("learning_rate",),
  "fedopt_yogi": ("learning_rate",),
  "indexed_hyperparams": ("learning_rate",),
}

PAIRS = [f"{o}-{i}" for o in tailopt.OUTER_RULES for i in tailopt.INNER_RULES]
# A pair's inner transform depends on the inner rule only and its outer on the outer rule
# only (test_every_pair_is_its_two_rules checks it); the contract runs once per rule.
RULES = [("inner", f"avg-{i}") for i in tailopt.INNER_RULES] + [
  ("outer", f"{o}-sgd") for o in tailopt.OUTER_RULES
]
RULE_IDS = [f"{level}:{name.split('-')[0 if level == 'outer' else 1]}" for level, name in RULES]


def _params(dtype):
  return {
    "w": jnp.linspace(-1.0, 1.0, 12, dtype=dtype).reshape(3, 4),
    "b": jnp.array([0.5, -0.25, 0.0], dtype),
  }


def _grads(dtype):
  return {
    "w": jnp.linspace(-3.0, 2.0, 12, dtype=dtype).reshape(3, 4),
    "b": jnp.array([1e-4, -2.0, 0.0], dtype),
  }


def _structure(state):
  return jax.tree.structure(state), [
    (jnp.shape(x), jnp.result_type(x)) for x in jax.tree.leaves(state)
  ]


def _contract(tx, dtype=jnp.float32, steps=3, extra=None):
  """jit init/update, dtype kept, state structure stable, finite updates."""
  params, grads = _params(dtype), _grads(dtype)
  tx = optax.with_extra_args_support(tx)
  state = jax.jit(tx.init)(params)
  before = _structure(state)
  update = jax.jit(functools.partial(tx.update, **(extra or {})))
  for _ in range(steps):
    updates, state = update(grads, state, params)
    for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params)):
      assert u.dtype == p.dtype and u.shape == p.shape
      assert np.all(np.isfinite(np.asarray(u, np.float32)))
    assert _structure(state) == before
  return updates


def _keyword_factory(fn, names):
  """``fn(**kw)`` with an explicit signature of ``names`` (inject_hyperparams reads it)."""

  def factory(**kw):
    return fn(**kw)

  factory.__signature__ = inspect.Signature(
    [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in names]
  )
  return factory


def _pair_tx(name, level, **hp):
  return getattr(tailopt.get_method(name, **hp), level)


def _float_hparams(name, level):
  """The float hyperparameters of one side of a pair (resolved defaults), no exponents."""
  m = tailopt.get_method(name)
  return {
    k: float(v)
    for k, v in m.hparams.items()
    if k.startswith(level)
    or (k in ("momentum", "weight_decay") and (k == "weight_decay") == (level == "inner"))
    if isinstance(v, float) and not k.endswith("_exponent")
  }


# ----------------------------------------------------------------- factories
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_factory_jit_dtype_and_stable_state(name, dtype):
  factory, floats, static = FACTORIES[name]
  _contract(factory(**static, **floats), dtype)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_factory_inject_hyperparams_every_float_under_jit(name):
  factory, floats, static = FACTORIES[name]
  injected = optax.inject_hyperparams(
    _keyword_factory(functools.partial(factory, **static), floats)
  )(**floats)
  got = _contract(injected)
  want = _contract(factory(**static, **floats))
  if name != "inject_noise":  # the noise stream differs by construction of its state
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), got, want)


@pytest.mark.parametrize("name", sorted(SCHEDULABLE))
def test_factory_accepts_schedules(name):
  factory, floats, static = FACTORIES[name]
  kw = dict(floats)
  for arg in SCHEDULABLE[name]:
    kw[arg] = optax.constant_schedule(floats[arg])
  got = _contract(factory(**static, **kw))
  want = _contract(factory(**static, **floats))
  if name != "inject_noise":
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, want)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_factory_in_multisteps_user_chain_and_extra_args(name):
  factory, floats, static = FACTORIES[name]
  tx = factory(**static, **floats)
  _contract(optax.MultiSteps(tx, every_k_schedule=2), steps=4)
  _contract(optax.chain(optax.scale_by_adam(), tx, optax.scale(-0.1)))
  _contract(tx, extra=dict(round_index=jnp.int32(3), step_index=jnp.int32(7), unrelated=1.0))


# ----------------------------------------------------------------- get_method pairs
def test_every_pair_is_its_two_rules():
  params = _params(jnp.float32)
  for name in PAIRS:
    outer, inner = name.split("-")
    m = tailopt.get_method(name)
    for level, ref in (("inner", f"avg-{inner}"), ("outer", f"{outer}-sgd")):
      got = _structure(getattr(m, level).init(params))
      assert got == _structure(getattr(tailopt.get_method(ref), level).init(params)), name


@pytest.mark.parametrize("level,name", RULES, ids=RULE_IDS)
def test_rule_contract(level, name):
  tx = _pair_tx(name, level)
  for dtype in (jnp.float32, jnp.bfloat16):
    _contract(tx, dtype, extra=dict(round_index=jnp.int32(2), step_index=jnp.int32(5)))
  _contract(optax.MultiSteps(tx, every_k_schedule=2), steps=4)
  _contract(optax.chain(optax.clip_by_global_norm(10.0), tx))


@pytest.mark.parametrize("level,name", RULES, ids=RULE_IDS)
def test_rule_inject_hyperparams_every_float_under_jit(level, name):
  floats = _float_hparams(name, level)
  assert floats, name
  injected = optax.inject_hyperparams(
    _keyword_factory(functools.partial(_pair_tx, name, level), floats)
  )(**floats)
  got = _contract(injected)
  want = _contract(_pair_tx(name, level, **floats))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), got, want)


@pytest.mark.parametrize("level,name", RULES, ids=RULE_IDS)
def test_rule_accepts_schedules(level, name):
  kw = {f"{level}_lr": optax.constant_schedule(0.01)}
  got = _contract(_pair_tx(name, level, **kw), extra=dict(round_index=jnp.int32(4)))
  want = _contract(_pair_tx(name, level, **{f"{level}_lr": 0.01}))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, want)


# ----------------------------------------------------------------- metric names
BASE_ROUND = {
  "loss",
  "nonfinite_frac",
  "delta_norm",
  "update_norm",
  "participants",
  "bytes_up",
  "bytes_down",
  "bytes_cumulative",
}
CLIPS = {"inner_clip_above", "inner_clip_below", "outer_clip_above", "outer_clip_below"}


def _loss(params, batch):
  return jnp.mean((batch["x"] @ params["w"] - batch["y"]) ** 2)


def _batch(c, z, rng=np.random.default_rng(0)):
  return {
    "x": rng.normal(size=(c, z, 4, 3)).astype(np.float32),
    "y": rng.normal(size=(c, z, 4)).astype(np.float32),
  }


@pytest.mark.parametrize(
  "name,extra",
  [
    ("fedavg", set()),
    ("adam2", set()),
    ("bi2clip", CLIPS),
    ("avg-biclip", CLIPS - {"outer_clip_above", "outer_clip_below"}),
  ],
)
def test_round_metric_names_are_pinned(name, extra):
  rnd = tailopt.build_round(_loss, tailopt.get_method(name), local_steps=2, num_clients=8)
  _, metrics = rnd(rnd.init({"w": jnp.zeros(3)}), _batch(8, 2))
  assert set(metrics) == BASE_ROUND | extra


def test_round_without_finite_check_drops_only_that_metric():
  """``check_finite=False``: the same numbers, no ``nonfinite_frac``."""
  runs = {}
  for check in (True, False):
    rnd = tailopt.build_round(
      _loss, tailopt.get_method("bi2clip"), local_steps=2, num_clients=8, check_finite=check
    )
    state, metrics = rnd(rnd.init({"w": jnp.ones(3)}), _batch(8, 2, np.random.default_rng(1)))
    runs[check] = (state.params, metrics)
  assert set(runs[True][1]) - set(runs[False][1]) == {"nonfinite_frac"}
  np.testing.assert_array_equal(runs[True][0]["w"], runs[False][0]["w"])
  for k, v in runs[False][1].items():
    np.testing.assert_array_equal(v, runs[True][1][k])


def _simulator(check_finite=True):
  def data_fn(worker, job, key):
    del worker, job
    return {"x": jax.random.normal(key, (2, 4, 3)), "y": jnp.zeros((2, 4))}

  return A.Simulator(
    _loss,
    tailopt.get_method("bi2clip"),
    data_fn,
    clock=A.ClockConfig(num_workers=4),
    config=A.AsyncConfig(scheme="buffered", buffer_size=2, local_steps=2),
    num_steps=3,
    check_finite=check_finite,
  )


def test_simulator_without_finite_check_drops_only_that_metric():
  out = {}
  for check in (True, False):
    sim = _simulator(check)
    out[check] = sim.run(sim.init({"w": jnp.ones(3)}), 3)
  assert set(out[True][1]) - set(out[False][1]) == {"nonfinite_frac"}
  np.testing.assert_array_equal(out[True][0].params["w"], out[False][0].params["w"])


def test_simulator_metric_names_are_pinned():
  sim = _simulator()
  _, metrics = sim.run(sim.init({"w": jnp.zeros(3)}), 3)
  assert {
    "loss",
    "nonfinite_frac",
    "delta_norm",
    "update_norm",
    "bytes_up",
    "bytes_down",
  } | CLIPS <= set(metrics)
  assert not any("nonfinite" in k and k != "nonfinite_frac" for k in metrics)


# ----------------------------------------------------------------- your own optimizer
def _quad(params, batch):
  return 0.5 * jnp.mean(jnp.sum((params["w"] - batch["t"]) ** 2, -1))


def test_user_transforms_as_inner_and_outer_with_clip_statistics():
  # The README's example: a transform tailopt does not ship (lion) inside, Bi2Clip's
  # outer half with the user's own clipping stage (optax.clip) monitored, outside.
  inner = optax.lion(1e-2)
  outer = optax.chain(tailopt.monitor_clip(optax.clip(0.05)), optax.sgd(1.0))
  rnd = tailopt.build_round(_quad, inner=inner, outer=outer, local_steps=3, num_clients=8)
  state = rnd.init({"w": jnp.zeros(5)})
  t = np.ones((8, 3, 4, 5), np.float32)
  state, metrics = rnd(state, {"t": t})
  # Every lion step moves each coordinate by exactly lr toward t, so Delta = -3 lr: with
  # lr = 0.01, |Delta| = 0.03 < 0.05 passes the outer clip; with lr = 0.1, 0.3 is cut.
  np.testing.assert_allclose(state.params["w"], 0.03, atol=1e-6)
  assert float(metrics["outer_clip_above"]) == 0.0
  rnd2 = tailopt.build_round(
    _quad, tailopt.Method(inner=optax.lion(0.1), outer=outer), local_steps=3, num_clients=8
  )
  state2, metrics2 = rnd2(rnd2.init({"w": jnp.zeros(5)}), {"t": t})
  np.testing.assert_allclose(state2.params["w"], 0.05, atol=1e-6)  # 0.3 cut to 0.05
  assert float(metrics2["outer_clip_above"]) == 1.0


def test_user_transforms_in_the_simulator():
  def data_fn(worker, job, key):
    del worker, job, key
    return {"t": jnp.ones((3, 4, 5))}

  method = tailopt.Method(
    inner=optax.lion(1e-2),
    outer=optax.chain(tailopt.monitor_clip(optax.clip(0.05)), optax.sgd(1.0)),
  )
  sim = A.Simulator(
    _quad,
    method,
    data_fn,
    clock=A.ClockConfig(num_workers=4),
    config=A.AsyncConfig(scheme="buffered", buffer_size=4, local_steps=3),
    num_steps=1,
  )
  state, metrics = sim.run(sim.init({"w": jnp.zeros(5)}), 1)
  np.testing.assert_allclose(state.params["w"], 0.03, atol=1e-6)
  assert float(metrics["outer_clip_above"][0]) == 0.0


def test_method_rejects_what_is_not_a_transform():
  with pytest.raises(TypeError, match="Method.inner must be an optax.GradientTransformation"):
    tailopt.Method(inner=0.1, outer=optax.sgd(1.0))
  with pytest.raises(ValueError, match="method .*or both inner= and outer="):
    tailopt.build_round(_quad, inner=optax.sgd(0.1), local_steps=1, num_clients=8)


def test_public_api_is_all_and_only_all():
  assert sorted(tailopt.__all__) == sorted(set(tailopt.__all__))
  for name in tailopt.__all__:
    assert hasattr(tailopt, name), name
  mutable = [n for n in tailopt.__all__ if isinstance(getattr(tailopt, n), (dict, list, set))]
  assert mutable == []

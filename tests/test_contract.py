"""The transform contract, in the manner of optax's ``contrib/_common_test.py``.

The factory list is derived from the public API: every function in ``tailopt.__all__`` and
``tailopt.asynchronous.__all__`` whose return annotation is a ``GradientTransformation``
(``FACTORIES`` must name exactly those, with the arguments to build each), the inner and
outer transform of every ``get_method`` rule, and the rules inside every asynchronous preset.
Each is checked under ``jax_enable_x64`` off and on: jit; float32 and bfloat16 kept; state
structure stable across updates; ``optax.inject_hyperparams`` on every float argument under
jit; schedules accepted; inside ``optax.MultiSteps`` and a user's ``optax.chain``; extra
arguments accepted; it minimises a small quadratic (optax's convergence check); the state's
and updates' shardings follow sharded parameters and stay the same across updates (no
recompilation). Also pins the metric names the round and the simulator emit.
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
  "delayed_nesterov": (A.delayed_nesterov, dict(learning_rate=0.1, momentum=0.9), dict(period=2)),
  "zclip": (tailopt.zclip, dict(z_threshold=2.5, ema_decay=0.9), dict(warmup_steps=2)),
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
  "delayed_nesterov": ("learning_rate",),
  "zclip": ("z_threshold", "ema_decay"),
}

PAIRS = [f"{o}-{i}" for o in tailopt.OUTER_RULES for i in tailopt.INNER_RULES]
# A pair's inner transform depends on the inner rule only and its outer on the outer rule
# only (test_every_pair_is_its_two_rules checks it); the contract runs once per rule.
RULES = [("inner", f"avg-{i}") for i in tailopt.INNER_RULES] + [
  ("outer", f"{o}-sgd") for o in tailopt.OUTER_RULES
]
RULE_IDS = [f"{level}:{name.split('-')[0 if level == 'outer' else 1]}" for level, name in RULES]

# Required arguments of the asynchronous presets (each returns an ``AsyncSetup``).
PRESET_ARGS = {"fedbuff": dict(buffer_size=4), "async_local_sgd": dict(num_workers=4)}


def _public_functions():
  for mod in (tailopt, A):
    for name in mod.__all__:
      obj = getattr(mod, name)
      if inspect.isfunction(obj):
        yield mod.__name__, name, obj


def _returns(fn, what):
  return what in str(inspect.signature(fn).return_annotation)


def _preset_rules():
  """``(id, transform)`` of every rule inside every public asynchronous preset."""
  out = []
  for _, name, fn in _public_functions():
    if _returns(fn, "AsyncSetup"):
      setup = fn(**PRESET_ARGS.get(name, {}))
      out += [(f"{name}:inner", setup.method.inner), (f"{name}:outer", setup.method.outer)]
      if setup.outer is not None:
        out.append((f"{name}:server", setup.outer))
  return out


PRESET_RULES = _preset_rules()


# The x64 half runs with the slow tests (CI runs both); the default suite keeps x32 and
# the x64 round regressions (test_round_under_x64_keeps_float32_and_the_numbers).
@pytest.fixture(params=[False, pytest.param(True, marks=pytest.mark.slow)], ids=["x32", "x64"])
def x64(request):
  """Runs the test with ``jax_enable_x64`` off and on (it changes weak types)."""
  with jax.enable_x64(request.param):
    yield request.param


def test_every_public_function_says_what_it_returns():
  # The factory list below is derived from return annotations: one missing hides a factory.
  missing = [
    f"{m}.{n}"
    for m, n, fn in _public_functions()
    if inspect.signature(fn).return_annotation is inspect.Signature.empty
  ]
  assert missing == []


def test_factories_are_exactly_the_public_transform_factories():
  public = {n for _, n, fn in _public_functions() if _returns(fn, "GradientTransformation")}
  assert public == set(FACTORIES), (
    f"public factories without a contract entry: {sorted(public - set(FACTORIES))}; "
    f"entries that are not public: {sorted(set(FACTORIES) - public)}"
  )
  assert len(PRESET_RULES) >= 8  # four presets, two rules each (and DN's server rule)


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
def test_factory_jit_dtype_and_stable_state(name, dtype, x64):
  factory, floats, static = FACTORIES[name]
  _contract(factory(**static, **floats), dtype)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_factory_inject_hyperparams_every_float_under_jit(name, x64):
  factory, floats, static = FACTORIES[name]
  injected = optax.inject_hyperparams(
    _keyword_factory(functools.partial(factory, **static), floats)
  )(**floats)
  got = _contract(injected)
  want = _contract(factory(**static, **floats))
  if name != "inject_noise":  # the noise stream differs by construction of its state
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), got, want)


@pytest.mark.parametrize("name", sorted(SCHEDULABLE))
def test_factory_accepts_schedules(name, x64):
  factory, floats, static = FACTORIES[name]
  kw = dict(floats)
  for arg in SCHEDULABLE[name]:
    kw[arg] = optax.constant_schedule(floats[arg])
  got = _contract(factory(**static, **kw))
  want = _contract(factory(**static, **floats))
  if name != "inject_noise":
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, want)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_factory_in_multisteps_user_chain_and_extra_args(name, x64):
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
def test_rule_contract(level, name, x64):
  tx = _pair_tx(name, level)
  for dtype in (jnp.float32, jnp.bfloat16):
    _contract(tx, dtype, extra=dict(round_index=jnp.int32(2), step_index=jnp.int32(5)))
  _contract(optax.MultiSteps(tx, every_k_schedule=2), steps=4)
  _contract(optax.chain(optax.clip_by_global_norm(10.0), tx))


@pytest.mark.parametrize("level,name", RULES, ids=RULE_IDS)
def test_rule_inject_hyperparams_every_float_under_jit(level, name, x64):
  floats = _float_hparams(name, level)
  assert floats, name
  injected = optax.inject_hyperparams(
    _keyword_factory(functools.partial(_pair_tx, name, level), floats)
  )(**floats)
  got = _contract(injected)
  want = _contract(_pair_tx(name, level, **floats))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), got, want)


@pytest.mark.parametrize("level,name", RULES, ids=RULE_IDS)
def test_rule_accepts_schedules(level, name, x64):
  kw = {f"{level}_lr": optax.constant_schedule(0.01)}
  got = _contract(_pair_tx(name, level, **kw), extra=dict(round_index=jnp.int32(4)))
  want = _contract(_pair_tx(name, level, **{f"{level}_lr": 0.01}))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, want)


@pytest.mark.parametrize("name", [n for n, _ in PRESET_RULES])
def test_preset_rule_contract(name, x64):
  tx = dict(PRESET_RULES)[name]
  for dtype in (jnp.float32, jnp.bfloat16):
    _contract(tx, dtype, extra=dict(round_index=jnp.int32(2), step_index=jnp.int32(5)))
  _contract(optax.MultiSteps(tx, every_k_schedule=2), steps=4)


# ----------------------------------------------------------------- convergence, sharding
def _as_descent(name, tx):
  """The factory as a descent rule: clipping and scaling stages get an SGD step after them."""
  if name in ("bi_clip", "l2_clip", "monitor_clip", "inject_noise", "scale_by_fedopt", "zclip"):
    return optax.chain(tx, optax.sgd(0.1))
  return tx


def _all_descent_rules():
  rules = {}
  for name, (factory, floats, static) in FACTORIES.items():
    if name == "inject_noise":  # Gaussian noise of scale 1e-3: converges to the noise floor
      floats = dict(floats, scale=1e-3)
      static = dict(static, distribution="gaussian")
    rules[f"factory:{name}"] = _as_descent(name, factory(**static, **floats))
  for (level, name), rid in zip(RULES, RULE_IDS):
    rules[f"rule:{rid}"] = _pair_tx(name, level, **{f"{level}_lr": 0.05})
  return rules  # the presets' rules are named rules (above) and delayed_nesterov


DESCENT_RULES = _all_descent_rules()
_CURVATURE = {"w": jnp.linspace(0.2, 1.0, 12).reshape(3, 4), "b": jnp.array([0.3, 0.6, 1.0])}


def _quadratic(params):
  t = _grads(jnp.float32)  # the target
  return sum(
    0.5 * jnp.sum(h * (p - q) ** 2)
    for p, q, h in zip(jax.tree.leaves(params), jax.tree.leaves(t), jax.tree.leaves(_CURVATURE))
  )


@pytest.mark.parametrize("name", sorted(DESCENT_RULES))
def test_minimises_a_quadratic(name, x64):
  """optax's convergence check: 600 steps on a diagonal quadratic cut the loss 100-fold."""
  tx = optax.with_extra_args_support(DESCENT_RULES[name])
  params = _params(jnp.float32)

  @jax.jit
  def run(params):
    def step(carry, i):
      p, s = carry
      g = jax.grad(_quadratic)(p)
      u, s = tx.update(g, s, p, round_index=i, step_index=i)
      return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.lax.scan(step, (params, tx.init(params)), jnp.arange(600, dtype=jnp.int32))
    return p

  final = run(params)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(final))
  assert float(_quadratic(final)) < 1e-2 * float(_quadratic(params)), name


@pytest.mark.parametrize("name", sorted(DESCENT_RULES))
def test_sharding_types_stable_across_init_update_and_jit(name, x64):
  """optax's sharding check (``optax/_src/sharding_test.py``): under an explicitly sharded
  mesh the state's types (shape, dtype and sharding) after ``update`` equal those after
  ``init``, eagerly and under jit, so a state fed back never recompiles; the updates keep
  the params' types; ``init`` accepts abstract params."""
  tx = optax.with_extra_args_support(DESCENT_RULES[name])
  assert tx.init(jax.ShapeDtypeStruct((2, 8, 4), jnp.float32)) is not None
  mesh = jax.make_mesh((8,), ("x",), axis_types=(jax.sharding.AxisType.Explicit,))
  spec = jax.sharding.NamedSharding(mesh, jax.P(None, "x"))
  types = lambda tree: jax.tree.map(jax.typeof, tree)
  with jax.set_mesh(mesh):
    params = {"w": jnp.linspace(-1.0, 1.0, 64, dtype=jnp.float32).reshape(2, 8, 4)}
    params = jax.device_put(params, spec)
    grads = jax.tree.map(lambda p: 0.5 * p + 0.1, params)
    extra = dict(round_index=jnp.int32(1), step_index=jnp.int32(1))
    state0 = tx.init(params)
    assert types(jax.jit(tx.init)(params)) == types(state0), name
    updates, state1 = tx.update(grads, state0, params, **extra)
    assert types(state1) == types(state0), name
    assert types(updates) == types(params), name
    _, state2 = jax.jit(functools.partial(tx.update, **extra))(grads, state0, params)
    assert types(state2) == types(state1), name


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


X64_METHODS = {
  "bi2clip": dict(
    inner_lr=0.05, inner_upper=1.0, inner_lower=0.01, outer_lr=1.0, outer_upper=0.5
  ),  # the x64 bug's report
  "adam-biclip": {},
  "avg-l2clip": {},
  "yogi-biclip": {},
}


def _x64_round(method):
  rnd = tailopt.build_round(_loss, method, local_steps=2, num_clients=8)
  state, metrics = rnd(
    rnd.init({"w": jnp.zeros(3, jnp.float32)}), _batch(8, 2, np.random.default_rng(3))
  )
  return state.params["w"], metrics


@pytest.mark.parametrize("name", [*X64_METHODS, "user-monitor-clip"])
def test_round_under_x64_keeps_float32_and_the_numbers(name):
  """Every monitored clip stage crashed under ``jax_enable_x64`` (a weakly typed count
  promoted the float32 scan carry); the round now runs and gives the x32 numbers."""
  if name == "user-monitor-clip":
    make = lambda: tailopt.Method(
      inner=optax.chain(tailopt.monitor_clip(optax.clip(0.5)), optax.sgd(0.1)),
      outer=optax.chain(tailopt.monitor_clip(optax.clip_by_global_norm(0.1)), optax.sgd(1.0)),
    )
  else:
    make = lambda: tailopt.get_method(name, **X64_METHODS[name])
  want, want_metrics = _x64_round(make())
  with jax.enable_x64(True):
    got, metrics = _x64_round(make())
  assert got.dtype == jnp.float32
  assert all(v.dtype == jnp.float32 for v in metrics.values()), metrics
  np.testing.assert_allclose(got, want, rtol=1e-6)
  for k, v in want_metrics.items():
    np.testing.assert_allclose(metrics[k], v, rtol=1e-6, err_msg=k)


@pytest.mark.slow  # the x64 half of the contract is behind `slow`
def test_simulator_under_x64_keeps_float32_and_the_numbers():
  want = _simulator().run(_simulator().init({"w": jnp.ones(3, jnp.float32)}), 3)
  with jax.enable_x64(True):
    sim = _simulator()
    got = sim.run(sim.init({"w": jnp.ones(3, jnp.float32)}), 3)
  assert got[0].params["w"].dtype == jnp.float32
  np.testing.assert_allclose(got[0].params["w"], want[0].params["w"], rtol=1e-6)
  for k in ("outer_clip_above", "inner_clip_above", "loss"):
    np.testing.assert_allclose(got[1][k], want[1][k], rtol=1e-6, err_msg=k)


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
    x = jax.random.normal(key, (2, 4, 3), jnp.float32)  # float64 by default under x64
    return {"x": x, "y": jnp.zeros((2, 4), jnp.float32)}

  return A.Simulator(
    _loss,
    tailopt.get_method("bi2clip"),
    data_fn,
    clock=A.ClockConfig(num_workers=4),
    config=A.AsyncConfig(scheme="buffered", buffer_size=2, local_steps=2),
    num_steps=3,
    check_finite=check_finite,
  )


@pytest.mark.slow
def test_simulator_without_finite_check_drops_only_that_metric():
  out = {}
  for check in (True, False):
    sim = _simulator(check)
    out[check] = sim.run(sim.init({"w": jnp.ones(3)}), 3)
  assert set(out[True][1]) - set(out[False][1]) == {"nonfinite_frac"}
  np.testing.assert_array_equal(out[True][0].params["w"], out[False][0].params["w"])


@pytest.mark.slow
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

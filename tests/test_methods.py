"""The method registry: names, parts, hyperparameters, optimizer memory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tailopt

TABLE = {  # name: (inner, outer, node arrays in P, server arrays in P)
  "fedavg": ("sgd", "avg", 0, 0),
  "avg-sgd": ("sgd", "avg", 0, 0),
  "avg-l2clip": ("l2clip", "avg", 0, 0),
  "avg-biclip": ("biclip", "avg", 0, 0),
  "adagrad-sgd": ("sgd", "adagrad", 0, 1),
  "adagrad-l2clip": ("l2clip", "adagrad", 0, 1),
  "adagrad-biclip": ("biclip", "adagrad", 0, 1),
  "rmsprop-sgd": ("sgd", "rmsprop", 0, 1),
  "rmsprop-l2clip": ("l2clip", "rmsprop", 0, 1),
  "rmsprop-biclip": ("biclip", "rmsprop", 0, 1),
  "adam-sgd": ("sgd", "adam", 0, 2),
  "adam-l2clip": ("l2clip", "adam", 0, 2),
  "adam-biclip": ("biclip", "adam", 0, 2),
  "fedadam": ("sgd", "adam", 0, 2),
  "fedyogi": ("sgd", "yogi", 0, 2),
  "fedavgm": ("sgd", "avgm", 0, 1),
  "adam2": ("adam", "adam", 2, 2),
  "diloco": ("adamw", "nesterov", 2, 1),
  "bi2clip": ("biclip", "biclip", 0, 0),
}
PARAMS = {"w": jnp.zeros((7, 3)), "b": jnp.zeros(3)}  # P = 24 numbers


def _param_copies(state):
  n = sum(x.size for x in jax.tree.leaves(state) if jnp.ndim(x) > 0)
  return n / 24


@pytest.mark.parametrize("name", sorted(TABLE))
def test_table_names_resolve_with_expected_memory(name):
  inner, outer, node_p, server_p = TABLE[name]
  m = tailopt.get_method(name)
  assert (m.inner_rule, m.outer_rule) == (inner, outer)
  assert _param_copies(m.inner.init(PARAMS)) == node_p
  assert _param_copies(m.outer.init(PARAMS)) == server_p


def test_bi2clip_state_holds_no_parameter_sized_arrays():
  # Without clip statistics: no arrays at all. With them (the default): the two float32
  # scalars of each monitored clip stage, nothing parameter-sized.
  m = tailopt.get_method("bi2clip", clip_stats=False)
  assert jax.tree.leaves(m.inner.init(PARAMS)) == []
  assert jax.tree.leaves(m.outer.init(PARAMS)) == []
  m = tailopt.get_method("bi2clip")
  for tx in (m.inner, m.outer):
    leaves = jax.tree.leaves(tx.init(PARAMS))
    assert [x.shape for x in leaves] == [(), ()]
    assert sorted(tailopt.measurements(tx.init(PARAMS))) == ["clip_above", "clip_below"]


def test_bi2clip_math():
  m = tailopt.get_method(
    "bi2clip",
    inner_lr=0.5,
    inner_upper=1.0,
    inner_lower=0.1,
    outer_lr=2.0,
    outer_upper=0.3,
    outer_lower=0.05,
  )
  g = jnp.array([3.0, 0.01, -0.5, 0.0])
  u, _ = m.inner.update(g, m.inner.init(g), g)
  np.testing.assert_allclose(u, np.float32([-0.5, -0.05, 0.25, 0.0]))
  u, _ = m.outer.update(g, m.outer.init(g), g)
  np.testing.assert_allclose(u, np.float32([-0.6, -0.1, 0.6, 0.0]))


def test_unknown_name_lists_known():
  with pytest.raises(ValueError, match="Unknown method 'fedprox'.*bi2clip.*diloco"):
    tailopt.get_method("fedprox")
  with pytest.raises(ValueError, match="Unknown method 'adam-lion'"):
    tailopt.get_method("adam-lion")


def test_unknown_or_bad_hyperparameter():
  with pytest.raises(ValueError, match="Unknown hyperparameter.*'lr'"):
    tailopt.get_method("fedavg", lr=0.1)
  with pytest.raises(ValueError, match="'fedavg' .avg-sgd. does not use outer_upper"):
    tailopt.get_method("fedavg", outer_upper=0.1)
  with pytest.raises(ValueError, match="inner_lower=2.0 > inner_upper=1.0"):
    tailopt.get_method("bi2clip", inner_upper=1.0, inner_lower=2.0)
  with pytest.raises(ValueError, match="inner_schedule"):
    tailopt.get_method("bi2clip", inner_schedule="epoch")


def test_defaults_by_rule():
  assert tailopt.get_method("diloco").hparams["outer_lr"] == 0.7
  assert tailopt.get_method("diloco").hparams["inner_lr"] == 1e-3
  assert tailopt.get_method("adagrad-sgd").hparams["outer_b1"] == 0.0
  assert tailopt.get_method("adam-sgd").hparams["outer_b1"] == 0.9
  assert tailopt.get_method("fedavg").hparams["outer_lr"] == 1.0


def _steps(tx, n, **extra):
  g = jnp.ones(1)
  s = tx.init(g)
  got = []
  for k in range(n):
    kw = {key: f(k) for key, f in extra.items()}
    u, s = tx.update(g, s, g, **kw)
    got.append(-float(u[0]))
  return got


def test_inner_schedule_indexed_by_the_round_it_is_given():
  # lr_t = 1 / t by round; z = 2 local steps: steps 0,1 -> 1, steps 2,3 -> 1/2.
  m = tailopt.get_method("avg-sgd", inner_lr=tailopt.power_law(1.0, -1.0))
  got = _steps(m.inner, 4, round_index=lambda k: k // 2, step_index=lambda k: k)
  np.testing.assert_allclose(got, [1.0, 1.0, 0.5, 0.5], rtol=1e-6)
  # The same through the exponent field (what a config sets).
  m = tailopt.get_method("avg-sgd", inner_lr=1.0, inner_lr_exponent=-1.0)
  got = _steps(m.inner, 4, round_index=lambda k: k // 2, step_index=lambda k: k)
  np.testing.assert_allclose(got, [1.0, 1.0, 0.5, 0.5], rtol=1e-6)
  # Indexed by step.
  m = tailopt.get_method("avg-sgd", inner_lr=1.0, inner_lr_exponent=-1.0, inner_schedule="step")
  got = _steps(m.inner, 3, round_index=lambda k: 0, step_index=lambda k: k)
  np.testing.assert_allclose(got, [1.0, 0.5, 1 / 3], rtol=1e-6)
  # In a plain optax chain (no index given) the schedule sees its own count.
  np.testing.assert_allclose(_steps(m.inner, 3), [1.0, 0.5, 1 / 3], rtol=1e-6)


@pytest.mark.parametrize(
  "level,field,exp",
  [
    ("inner", "upper", "zeta"),
    ("inner", "lower", "gamma"),
    ("outer", "upper", "zeta"),
    ("outer", "lower", "gamma"),
    ("outer", "lr", "nu"),
  ],
)
def test_every_power_law_of_the_spec(level, field, exp):
  # x_t = x_0 t^e for each threshold and rate, indexed by the round; BiClip at a tiny
  # input returns d_t, at a huge one u_t, and the outer step is lr_t * Delta.
  del exp
  kw = dict(
    inner_lr=1.0, inner_upper=4.0, inner_lower=1.0, outer_lr=1.0, outer_upper=4.0, outer_lower=1.0
  )
  kw[f"{level}_{field}_exponent"] = -1.0
  m = tailopt.get_method("bi2clip", **kw)
  tx = getattr(m, level)
  probe = {"upper": 1e6, "lower": 1e-6, "lr": 2.0}[field]
  base = {"upper": 4.0, "lower": 1.0, "lr": 2.0}[field]
  got = []
  for t in range(3):
    g = jnp.full((1,), probe)
    u, _ = tx.update(g, tx.init(g), g, round_index=t, step_index=t)
    got.append(-float(u[0]))
  np.testing.assert_allclose(got, [base / (t + 1) for t in range(3)], rtol=1e-6)


def test_known_methods_lists_everything():
  names = tailopt.known_methods()
  assert len(names) == 8 + len(tailopt.OUTER_RULES) * len(tailopt.INNER_RULES)
  for n in TABLE:
    tailopt.get_method(n)

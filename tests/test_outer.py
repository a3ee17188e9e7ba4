"""FedOpt outer rules against hand-computed values over three rounds."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import tailopt

DELTAS = [np.array([1.0, -2.0]), np.array([0.5, 0.5]), np.array([-1.0, 3.0])]


def _run(tx, deltas=DELTAS):
  x = jnp.zeros(2)
  state = tx.init(x)
  xs = []
  for d in deltas:
    u, state = tx.update(jnp.asarray(d, jnp.float32), state, x)
    x = optax.apply_updates(x, u)
    xs.append(np.asarray(x))
  return xs, state


def _reference(rule, lr, b1, b2, tau, bias=False):
  """Plain-numpy FedOpt (Reddi et al. 2021), written independently of the library."""
  x = np.zeros(2)
  m = np.zeros(2)
  v = np.zeros(2)
  xs = []
  for t, d in enumerate(DELTAS, start=1):
    m = b1 * m + (1 - b1) * d
    if rule == "adagrad":
      v = v + d * d
    elif rule == "yogi":
      v = v - (1 - b2) * d * d * np.sign(v - d * d)
    else:
      v = b2 * v + (1 - b2) * d * d
    mh, vh = m, v
    if bias:
      mh = m / (1 - b1**t)
      if rule != "adagrad":
        vh = v / (1 - b2**t)
    x = x - lr * mh / (np.sqrt(vh) + tau)
    xs.append(x.copy())
  return xs


def test_adagrad_first_rounds_by_hand():
  # b1 = 0: m = Delta. Round 1: v = [1, 4]; x = -0.1 * [1/(1+.1), -2/(2+.1)].
  xs, _ = _run(tailopt.fedopt_adagrad(0.1, tau=0.1))
  np.testing.assert_allclose(xs[0], [-0.1 / 1.1, 0.2 / 2.1], rtol=1e-6)
  # Round 2: v = [1.25, 4.25]; step = 0.1 * 0.5 / (sqrt(v) + 0.1).
  want = xs[0] - 0.1 * 0.5 / (np.sqrt([1.25, 4.25]) + 0.1)
  np.testing.assert_allclose(xs[1], want, rtol=1e-6)


def test_adam_first_round_by_hand():
  # m = 0.1 * Delta, v = 0.01 * Delta^2, so m / sqrt(v) = sign(Delta); tau = 0 -> x = -lr sign.
  xs, _ = _run(tailopt.fedopt_adam(0.3, b1=0.9, b2=0.99, tau=0.0))
  np.testing.assert_allclose(xs[0], [-0.3, 0.3], rtol=1e-6)


@pytest.mark.parametrize(
  "rule,factory,b1,b2",
  [
    ("adagrad", tailopt.fedopt_adagrad, 0.0, None),
    ("adagrad", tailopt.fedopt_adagrad, 0.5, None),
    ("rmsprop", tailopt.fedopt_rmsprop, 0.0, 0.9),
    ("adam", tailopt.fedopt_adam, 0.9, 0.99),
    ("yogi", tailopt.fedopt_yogi, 0.9, 0.99),
  ],
)
@pytest.mark.parametrize("bias", [False, True])
def test_three_rounds_match_reference(rule, factory, b1, b2, bias):
  kw = dict(b1=b1, tau=1e-2, bias_correction=bias)
  if b2 is not None:
    kw["b2"] = b2
  xs, _ = _run(factory(0.05, **kw))
  ref = _reference(rule, 0.05, b1, b2 or 0.0, 1e-2, bias)
  for got, want in zip(xs, ref):
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-7)


def test_state_memory():
  p = {"w": jnp.zeros((3, 4))}
  n = lambda s: sum(x.size for x in jax.tree.leaves(s) if x.ndim)  # noqa: E731
  assert n(tailopt.fedopt_adagrad(0.1).init(p)) == 12  # v only
  assert n(tailopt.fedopt_rmsprop(0.1).init(p)) == 12
  assert n(tailopt.fedopt_adam(0.1).init(p)) == 24  # m and v
  assert n(tailopt.fedopt_yogi(0.1).init(p)) == 24


def test_differs_from_optax_adam():
  # optax.adam bias-corrects and puts eps differently; ours must not silently equal it.
  ours, _ = _run(tailopt.fedopt_adam(0.1, tau=1e-3))
  theirs, _ = _run(optax.adam(0.1, b1=0.9, b2=0.99, eps=1e-3))
  assert not np.allclose(ours[-1], theirs[-1])


def test_errors():
  with pytest.raises(ValueError, match="Unknown FedOpt rule"):
    tailopt.scale_by_fedopt("lamb")
  with pytest.raises(ValueError, match="b1=1.0 must be in"):
    tailopt.fedopt_adam(0.1, b1=1.0)
  with pytest.raises(ValueError, match="tau=-1"):
    tailopt.fedopt_adam(0.1, tau=-1)


def test_schedule_learning_rate_and_inject_hyperparams_and_bf16():
  xs, _ = _run(tailopt.fedopt_adam(tailopt.power_law(0.3, -1.0), tau=0.0))
  np.testing.assert_allclose(xs[0], [-0.3, 0.3], rtol=1e-6)
  tx = optax.inject_hyperparams(tailopt.fedopt_adam)(learning_rate=0.3, tau=0.0)
  xs2, _ = _run(tx)
  np.testing.assert_allclose(xs2[0], [-0.3, 0.3], rtol=1e-6)
  x = jnp.ones(2, jnp.bfloat16)
  tx = tailopt.fedopt_yogi(0.1)
  u, s = jax.jit(tx.update)(jnp.array([1.0, -1.0], jnp.bfloat16), tx.init(x), x)
  assert u.dtype == jnp.bfloat16 and s[0].nu.dtype == jnp.bfloat16

"""Overlapped streaming (tailopt.overlap): delay tau, blend alpha and eager stand-ins against
a numpy re-implementation by hand; tau = 0, alpha = 1 is the plain streaming round bit for
bit; the time model credits the overlap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tailopt
from tailopt import asynchronous as A
from tailopt import overlap as O
from tailopt import timing as T


def _loss(params, batch):
  return jnp.mean((batch["x"] @ params["w"] + params["b"] - batch["y"]) ** 2)


def _batch(seed):
  rng = np.random.default_rng(seed)
  return {
    "x": rng.normal(size=(8, 2, 4, 30)).astype(np.float32),
    "y": rng.normal(size=(8, 2, 4)).astype(np.float32),
  }


@pytest.mark.parametrize("method", ["bi2clip", pytest.param("diloco", marks=pytest.mark.slow)])
def test_no_delay_full_blend_is_the_streaming_round_bit_for_bit(method):
  m = tailopt.get_method(method)
  p0 = {"w": jnp.zeros(30), "b": jnp.zeros(())}
  plain = tailopt.build_round(_loss, m, local_steps=2, num_clients=8, fragments=2)
  over = O.build_round(_loss, m, local_steps=2, num_clients=8, fragments=2, overlap=O.Overlap())
  s1, s2 = plain.init(p0), over.init(p0)
  for r in range(5):
    s1, m1 = plain(s1, _batch(r))
    s2, m2 = over(s2, _batch(r))
    for a, b in zip(jax.tree.leaves(m1), jax.tree.leaves(m2)):
      np.testing.assert_array_equal(a, b)
  # The clients' own models differ only in the fragment synced last (restarted vs pending).
  jax.tree.map(np.testing.assert_array_equal, s1.params, s2.params)
  jax.tree.map(np.testing.assert_array_equal, s1.outer_state, s2.outer_state)


# Two clients, SGD inner (lr 0.1) on f_i(x) = 0.5 |x - t_i|^2, avg outer with lr 0.5:
# leaves 'a' (size 2, fragment 0) and 'b' (size 1, fragment 1); round r syncs r % 2.
TARGETS = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]], np.float32)
LR, OUTER_LR, Z = 0.1, 0.5, 3
FRAG = [slice(0, 2), slice(2, 3)]


def _quad(p, b):
  return 0.5 * (jnp.sum((p["a"] - b["t"][:2]) ** 2) + jnp.sum((p["b"] - b["t"][2:]) ** 2))


def _by_hand(rounds, tau, alpha, eager):
  """The overlap's definition step by step in numpy: (global, clients' models) per round."""
  g = np.zeros(3)
  x = np.zeros((2, 3))
  out = []
  for r in range(rounds):
    for s in range(Z + 1):
      if s == tau and r > 0:  # the fragment synced last round arrives
        f = FRAG[(r - 1) % 2]
        x[:, f] = alpha * g[f] + (1 - alpha) * x[:, f]
      if s < Z:
        x = x - LR * (x - TARGETS)
    f = FRAG[r % 2]
    deltas = g[f] - x[:, f]
    old = g[f].copy()
    g[f] = old - OUTER_LR * deltas.mean(0)
    if eager:  # the client's own Delta through the outer rule stands in
      x[:, f] = old - OUTER_LR * deltas
    out.append((g.copy(), x.copy()))
  return out


@pytest.mark.parametrize(
  "tau,alpha,eager",
  [
    (0, 1.0, False),
    (1, 1.0, False),
    (2, 0.5, False),
    (3, 0.25, False),
    (1, 1.0, True),
    (2, 0.5, True),
  ],
)
def test_delay_blend_and_eager_by_hand(tau, alpha, eager):
  rnd = O.build_round(
    _quad,
    tailopt.get_method("fedavg", inner_lr=LR, outer_lr=OUTER_LR),
    local_steps=Z,
    num_clients=2,
    mesh=tailopt.client_mesh(1),
    fragments=2,
    overlap=O.Overlap(delay=tau, alpha=alpha, eager=eager),
  )
  state = rnd.init({"a": jnp.zeros(2), "b": jnp.zeros(1)})
  batch = {"t": jnp.broadcast_to(jnp.asarray(TARGETS)[:, None], (2, Z, 3))}
  for r, (g, x) in enumerate(_by_hand(5, tau, alpha, eager)):
    state, _ = rnd(state, batch)
    got_g = np.concatenate([np.asarray(state.params["a"]), np.asarray(state.params["b"])])
    np.testing.assert_allclose(got_g, g, rtol=1e-5, atol=1e-6, err_msg=f"round {r}")
    lp = state.local_params
    got_x = np.concatenate([np.asarray(lp["a"]), np.asarray(lp["b"])], axis=1)
    np.testing.assert_allclose(got_x, x, rtol=1e-5, atol=1e-6, err_msg=f"round {r}")


def test_overlap_refuses_bad_settings():
  m = tailopt.get_method("fedavg")
  kw = dict(local_steps=2, num_clients=8, fragments=2)
  with pytest.raises(ValueError, match=r"delay=3 must be an integer in \[0, local_steps=2\]"):
    O.build_round(_loss, m, overlap=O.Overlap(delay=3), **kw)
  with pytest.raises(ValueError, match="alpha=1.5 must be in"):
    O.build_round(_loss, m, overlap=O.Overlap(alpha=1.5), **kw)
  with pytest.raises(ValueError, match="participation=None"):
    O.build_round(_loss, m, overlap=O.Overlap(delay=1), participation=4, **kw)


def test_time_model_credits_the_overlap():
  # 2 clients at 1 and 2 s per step, z = 4 (compute 4 s and 8 s); 1 s up, 0.5 s server,
  # 1 s down (1e6 bytes each way at 8 Mb/s, no latency).
  clock = A.ClockConfig(num_workers=2, step_times=(1.0, 2.0), speeds="fixed", job_noise="none")
  net = T.NetworkConfig(bandwidth_gbps=0.008, server_step_s=0.5)
  barrier = T.SyncClock(clock, net, 4, 3)
  np.testing.assert_allclose(barrier.times(0, 0.0, [1e6] * 3, [1e6] * 3), [10.5, 21, 31.5])
  # tau = 2: round 0 ends at 4 and 8 s; its average arrives at 8 + 1 + 0.5 + 1 = 10.5 s.
  # Round 1: client 0 reaches step 2 at 6 s, waits to 10.5, ends at 12.5; client 1 reaches
  # step 2 at 12 s (arrived), ends at 16: average at 16 + 2.5 = 18.5. Round 2: client 0
  # at step 2 at 14.5, waits to 18.5, ends 20.5; client 1 at 20, ends 24: 26.5.
  lapped = T.SyncClock(clock, net, 4, 3, delay=2)
  np.testing.assert_allclose(lapped.times(0, 0.0, [1e6] * 3, [1e6] * 3), [10.5, 18.5, 26.5])
  # The state carries over chunks (and checkpoints): two calls give the same times.
  again = T.SyncClock(clock, net, 4, 3, delay=2)
  t1 = again.times(0, 0.0, [1e6], [1e6])
  t2 = again.times(1, float(t1[-1]), [1e6] * 2, [1e6] * 2)
  np.testing.assert_allclose(np.concatenate([t1, t2]), [10.5, 18.5, 26.5])
  state = again.state()
  fresh = T.SyncClock(clock, net, 4, 3, delay=2)
  fresh.load_state(state)
  assert fresh.state() == state
  # tau = z = 4: client 1 never waits (its average is in by its last step).
  full = T.SyncClock(clock, net, 4, 2, delay=4)
  np.testing.assert_allclose(full.times(0, 0.0, [1e6] * 2, [1e6] * 2), [10.5, 18.5])


def test_overlap_config_validation():
  from configs import async_synthetic, synthetic
  from experiments import validate
  from experiments.engines import build

  c = synthetic.get_config()
  c.fragments, c.overlap.delay, c.overlap.alpha = 2, 1, 0.5
  assert validate.problems(c) == []
  assert build.overlap(c) == O.Overlap(delay=1, alpha=0.5)
  assert build.sync_clock(c).delay == 1
  c.overlap.delay = 0
  c.overlap.alpha = 1.0
  assert build.overlap(c) is None and build.sync_clock(c).delay is None  # plain streaming
  for fields, needle in [
    (dict(fragments=0, delay=1), "config.overlap is set but streaming is off"),
    (dict(fragments=2, delay=99), "config.overlap.delay=99 > config.local_steps"),
    (dict(fragments=2, alpha=2.0), "config.overlap.alpha=2.0 must be in [0, 1]"),
    (dict(fragments=2, eager=True, participation=4), "config.overlap needs every client"),
  ]:
    c = synthetic.get_config()
    c.fragments = fields.pop("fragments")
    if "participation" in fields:
      c.participation = fields.pop("participation")
    for k, v in fields.items():
      c.overlap[k] = v
    assert any(needle in p for p in validate.problems(c)), (needle, validate.problems(c))
  a = async_synthetic.get_config()
  a.overlap.eager = True
  assert any("applies to synchronous streaming" in p for p in validate.problems(a))


@pytest.mark.slow
@pytest.mark.parametrize("eager", [False, True])
def test_overlap_on_eight_devices_equals_one(eager):
  m = tailopt.get_method("bi2clip")
  p0 = {"w": jnp.zeros(30), "b": jnp.zeros(())}
  ov = O.Overlap(delay=1, alpha=0.7, eager=eager)
  out = []
  for mesh in (None, tailopt.client_mesh(1)):
    rnd = O.build_round(_loss, m, local_steps=2, num_clients=8, fragments=2, overlap=ov, mesh=mesh)
    state = rnd.init(p0)
    for r in range(4):
      state, metrics = rnd(state, _batch(r))
    out.append(jax.device_get((state.params, state.local_params, metrics)))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), *out)

"""The simulated clock of every run (tailopt.timing): round durations by hand, the same jobs
as the asynchronous clock, replayed compute times, who takes part, and sim_time in runs."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tailopt
from tailopt import asynchronous as A
from tailopt import timing as T

FIXED = dict(speeds="fixed", job_noise="none")


def test_sync_round_duration_by_hand():
  # 3 clients at 0.5, 1 and 2 s per step, z = 4: compute 2, 4, 8 s (+ 0.1 s fixed latency).
  clock = A.ClockConfig(num_workers=3, step_times=(0.5, 1.0, 2.0), comm_latency=0.1, **FIXED)
  # Uplinks 1, 8, 80 Mb/s; downlink 8 Mb/s for all; 20 ms each way; server step 0.3 s.
  net = T.NetworkConfig(
    bandwidth_gbps=0.008, uplink_gbps=(0.001, 0.008, 0.08), latency_ms=20, server_step_s=0.3
  )
  sc = T.SyncClock(clock, net, local_steps=4, rounds=3)
  # 1e6 bytes up: 8 s, 1 s, 0.1 s; arrivals 2.1+0.02+8 = 10.12, 4.1+0.02+1 = 5.12,
  # 8.1+0.02+0.1 = 8.22 -> 10.12; + 0.3 server; broadcast 2e6 bytes at 8 Mb/s: 2 s + 0.02.
  assert sc.round_seconds(0, 1e6, 2e6) == pytest.approx(10.12 + 0.3 + 2.02)
  # Without client 0 the slowest arrival is client 2's 8.22 s.
  assert sc.round_seconds(1, 1e6, 2e6, [False, True, True]) == pytest.approx(8.22 + 0.3 + 2.02)
  # Fewer bytes (a compressed payload, one fragment): client 2's compute dominates.
  assert sc.round_seconds(2, 1e4, 0) == pytest.approx(8.1 + 0.02 + 1e4 * 8 / 80e6 + 0.3 + 0.02)
  times = sc.times(0, 5.0, [1e6, 1e6], [2e6, 2e6], [[True] * 3, [False, True, True]])
  np.testing.assert_allclose(times, [5.0 + 12.44, 5.0 + 12.44 + 10.54])


def test_free_network_is_the_async_clocks_sync_scheme():
  # The same jobs as tailopt.asynchronous: with a free network a synchronous round ends with
  # its slowest job, exactly the 'sync' scheme's tick times (stragglers, log-normal noise).
  for kw in (dict(speeds="stragglers"), dict(speeds="lognormal", job_noise="exponential")):
    clock = A.ClockConfig(num_workers=8, seed=3, comm_latency=0.25, **kw)
    want = A.make_schedule(clock, scheme="sync", local_steps=4, num_steps=30).tick_time
    got = T.SyncClock(clock, T.NetworkConfig(), 4, 30).times(0, 0.0, [0.0] * 30, [0.0] * 30)
    np.testing.assert_array_equal(got, want)


def test_replay_csv_by_hand_in_both_engines_and_bad_files(tmp_path):
  path = tmp_path / "times.csv"
  path.write_text("worker,job,seconds\n0,1,5.0\n0,0,3.0\n1,0,4.0\n")
  replay = T.load_replay(str(path))
  clock = T.replayed(A.ClockConfig(num_workers=2, **FIXED), replay)
  assert clock.job_times == ((3.0, 5.0), (4.0,))  # in job order
  sc = T.SyncClock(clock, T.NetworkConfig(), 4, 4)
  # Worker 0 cycles 3, 5; worker 1 repeats 4: rounds take 4, 5, 4, 5 s.
  np.testing.assert_allclose(sc.times(0, 0.0, [0] * 4, [0] * 4), [4, 9, 13, 18])
  sync = A.make_schedule(clock, scheme="sync", local_steps=4, num_steps=4)
  np.testing.assert_allclose(sync.tick_time, [4, 9, 13, 18])
  # The async clock replays them too: worker 0 arrives at 3, 8, 11, 16, worker 1 at 4, 8,
  # 12, 16; one server step per arrival (the two at 8 are two steps at 8).
  asy = A.make_schedule(clock, scheme="async", local_steps=4, num_steps=6)
  np.testing.assert_allclose(asy.tick_time, [3, 4, 8, 8, 11, 12])
  assert "job_times" not in A.ClockConfig().to_dict()  # fingerprints of unreplayed runs
  path.write_text("worker,seconds\n0,1\n")
  with pytest.raises(ValueError, match="must name worker, job and seconds"):
    T.load_replay(str(path))
  path.write_text("worker,job,seconds\n0,0,-1\n")
  with pytest.raises(ValueError, match="line 2: needs worker >= 0"):
    T.load_replay(str(path))
  with pytest.raises(ValueError, match=r"no measured jobs for workers \[1, 2\]"):
    T.replayed(A.ClockConfig(num_workers=3, **FIXED), {0: np.ones(1)})
  with pytest.raises(ValueError, match="job_times needs one non-empty list"):
    A.ClockConfig(num_workers=2, job_times=((1.0,),))


def test_network_config_checks_and_async_job_comm():
  with pytest.raises(ValueError, match="latency_ms=-1"):
    T.NetworkConfig(latency_ms=-1)
  with pytest.raises(ValueError, match="uplink_gbps has 2 entries for 3 clients"):
    T.NetworkConfig(uplink_gbps=(1.0, 2.0)).seconds_per_byte("up", 3)
  # One async job: pull 1e6 bytes at 8 Mb/s (1 s) and push them (1 s), 50 ms each way.
  net = T.NetworkConfig(bandwidth_gbps=0.008, latency_ms=50)
  assert T.job_comm_seconds(net, 1e6, 1e6) == pytest.approx(2.1)
  assert T.job_comm_seconds(T.NetworkConfig(), 1e9, 1e9) == 0.0


def test_participant_masks_are_the_rounds_draws():
  # adam2's inner Adam counts its steps: only the drawn clients' counts move.
  def loss(p, b):
    return jnp.mean((b["x"] @ p["w"] - b["y"]) ** 2)

  rnd = tailopt.build_round(
    loss, tailopt.get_method("adam2"), local_steps=1, num_clients=8, participation=3
  )
  state = rnd.init({"w": jnp.zeros(4)}, seed=5)
  masks = rnd.participants(state, 3)
  assert masks.shape == (3, 8) and (masks.sum(1) == 3).all()
  assert len({tuple(m) for m in masks}) > 1  # different draws each round
  batch = {"x": jnp.ones((8, 1, 2, 4)), "y": jnp.ones((8, 1, 2))}
  for r in range(3):
    before = np.asarray(jax.tree.leaves(state.inner_state)[0]).copy()
    state, _ = rnd(state, batch)
    after = np.asarray(jax.tree.leaves(state.inner_state)[0])
    np.testing.assert_array_equal(after != before, masks[r])
  full = tailopt.build_round(loss, tailopt.get_method("adam2"), local_steps=1, num_clients=8)
  assert full.participants(full.init({"w": jnp.zeros(4)}), 2).all()


def test_config_validation_of_clock_and_network():
  from configs import async_synthetic, synthetic
  from experiments import validate

  c = synthetic.get_config()
  c.network.bandwidth_gbps, c.network.latency_ms = 1.0, 50.0
  assert validate.problems(c) == []
  c.network.latency_ms, c.network.downlink_gbps = -5.0, (1.0, 2.0)
  c.clock.replay = "/no/such.csv"
  got = validate.problems(c)
  for needle in (
    "config.network.latency_ms=-5.0 must be a finite number >= 0",
    "config.network.downlink_gbps=(1.0, 2.0) must give one Gb/s per client (8 numbers)",
    "config.clock.replay: replay file '/no/such.csv' does not exist",
  ):
    assert any(needle in p for p in got), (needle, got)
  a = async_synthetic.get_config()
  a.network.server_step_s, a.network.uplink_gbps = 1.0, tuple(float(i + 1) for i in range(8))
  got = validate.problems(a)
  assert any("server_step_s > 0 is not modeled by the asynchronous clock" in p for p in got)
  assert any("uplink_gbps differs between workers" in p for p in got)


def test_async_clock_gets_the_jobs_transfer_time():
  from configs import async_synthetic
  from experiments.engines import asynchronous as engine

  c = async_synthetic.get_config()
  c.clock.comm_latency = 0.5
  c.network.bandwidth_gbps, c.network.latency_ms = 0.008, 10.0
  clock = engine.clock_config(c, param_bytes=1e6)  # + 2 x (10 ms + 1 s)
  assert clock.comm_latency == pytest.approx(0.5 + 2.02)
  with pytest.raises(ValueError, match="needs the model's size"):
    engine.clock_config(c)


SMALL = [
  "--config",
  "configs/synthetic.py:runlocal",
  "--config.eval_every=2",
  "--config.checkpoint_every=2",
  "--config.synthetic.dim=8",
  "--config.synthetic.examples_per_client=64",
  "--config.synthetic.test_examples=128",
  "--config.progress=False",
  "--config.clock.speeds=fixed",
  "--config.clock.job_noise=none",
  "--config.clock.base_step_time=0.5",
  "--config.network.bandwidth_gbps=0.000008",
  "--config.network.latency_ms=100",
  "--config.network.server_step_s=0.25",
]


def _rows(workdir):
  return [json.loads(line) for line in open(workdir / "metrics.jsonl")]


@pytest.mark.slow
@pytest.mark.parametrize(
  "extra",
  [[], ["--config.fragments=2", "--config.overlap.delay=2", "--config.overlap.alpha=0.5"]],
  ids=["plain", "overlapped"],
)
def test_sync_run_logs_sim_time_by_hand_and_resumes_it(tmp_path, capsys, extra):
  from experiments import main as main_lib

  # synthetic:runlocal, 8 clients x z local steps; bytes up = bytes down = 4 * (dim + 1).
  a, b = [*SMALL, *extra, "--workdir", str(tmp_path / "a")], [*SMALL, *extra]
  assert main_lib.main([*a, "--config.rounds=4"]) == 0
  assert main_lib.main([*a, "--config.rounds=6"]) == 0
  assert main_lib.main([*b, "--config.rounds=6", "--workdir", str(tmp_path / "b")]) == 0
  capsys.readouterr()
  config = json.load(open(tmp_path / "b" / "config.json"))
  z = config["local_steps"]
  rows = [r for r in _rows(tmp_path / "b") if "train/loss" in r]
  resumed = [r for r in _rows(tmp_path / "a") if "train/loss" in r]
  # Extended from the checkpoint at round 4: the same times and numbers.
  assert [r["sim_time"] for r in resumed] == [r["sim_time"] for r in rows]
  assert [r["train/loss"] for r in resumed] == [r["train/loss"] for r in rows]
  up, down = rows[0]["train/bytes_up"], rows[0]["train/bytes_down"]
  # Round: z * 0.5 s of compute, 0.1 s + bytes at 1000 b/s up, 0.25 s, the same down.
  if not extra:
    assert up == down == 4 * (8 + 1)
    per = z * 0.5 + (0.1 + up * 8 / 8000) + 0.25 + (0.1 + down * 8 / 8000)
    np.testing.assert_allclose([r["sim_time"] for r in rows], per * np.arange(1, 7), rtol=1e-12)
  else:  # equal clients (compute c): E = max(E + c tau / z, A) + c (1 - tau / z), A = E + comm
    c, frac = z * 0.5, 2 / z
    ends, arrive, want = 0.0, 0.0, []
    for r in rows:
      comm = 0.1 + r["train/bytes_up"] * 8 / 8000 + 0.25 + 0.1 + r["train/bytes_down"] * 8 / 8000
      ends = max(ends + c * frac, arrive) + c * (1 - frac)
      arrive = ends + comm
      want.append(arrive)
    np.testing.assert_allclose([r["sim_time"] for r in rows], want, rtol=1e-12)
    # The overlap is credited: the plain streaming round waits for every broadcast.
    plain = sum(
      c + 0.1 + r["train/bytes_up"] * 8 / 8000 + 0.45 + r["train/bytes_down"] * 8 / 8000
      for r in rows
    )
    assert want[-1] < plain

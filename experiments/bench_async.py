"""Wall time of an asynchronous run against a synchronous TailOPT run, same work.

    python -m experiments.bench_async [--rounds 12] [--local-steps 4] [--batch 32]

Both runs train the same ~1M-parameter MLP (784-1024-256-10) with Bi²Clip on 8 simulated
CPU devices and compute the same number of local steps:

* synchronous: ``tailopt.build_round`` over N = 8 clients (one per device), ``rounds``
  rounds, blocking on every round's result;
* asynchronous: :class:`tailopt.asynchronous.Simulator`, scheme A with K = N/2, log-normal
  worker speeds, polynomial delay-aware rate, ``rounds * N / K`` server steps (each applies K
  jobs, so ``rounds * N`` jobs in all), run in chunks of ``--chunk`` server steps (blocking
  on each chunk).

Compile time is excluded (every function is warmed up first). The last line printed is the
ratio async / sync (target <= 1.5).
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
  ).strip()

import argparse  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import tailopt  # noqa: E402
from tailopt import asynchronous as A  # noqa: E402

DIMS = (784, 1024, 256, 10)


def init_mlp(seed=0):
  rng = np.random.default_rng(seed)
  params = {}
  for i, (a, b) in enumerate(zip(DIMS[:-1], DIMS[1:])):
    params[f"w{i}"] = jnp.asarray(rng.normal(size=(a, b)) / np.sqrt(a), jnp.float32)
    params[f"b{i}"] = jnp.zeros((b,), jnp.float32)
  return params


def loss_fn(params, batch):
  x, y = batch
  h = x
  n = len(DIMS) - 1
  for i in range(n):
    h = h @ params[f"w{i}"] + params[f"b{i}"]
    if i < n - 1:
      h = jax.nn.relu(h)
  logp = jax.nn.log_softmax(h)
  return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def make_data(num_workers, per_worker, seed=1):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(num_workers, per_worker, DIMS[0])).astype(np.float32)
  y = rng.integers(0, DIMS[-1], size=(num_workers, per_worker)).astype(np.int32)
  return jnp.asarray(x), jnp.asarray(y)


def job_batches(data, worker, job, z, b):
  """Worker ``worker``'s ``job``-th job: z minibatches of b consecutive examples."""
  x, y = data
  n = x.shape[1]
  start = (job * z * b) % (n - z * b + 1)
  xs = jax.lax.dynamic_slice_in_dim(x[worker], start, z * b, 0).reshape(z, b, -1)
  ys = jax.lax.dynamic_slice_in_dim(y[worker], start, z * b, 0).reshape(z, b)
  return xs, ys


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--rounds", type=int, default=12)
  ap.add_argument("--local-steps", type=int, default=4)
  ap.add_argument("--batch", type=int, default=32)
  ap.add_argument("--workers", type=int, default=8)
  ap.add_argument("--buffer", type=int, default=None, help="K (default N/2)")
  ap.add_argument("--chunk", type=int, default=None, help="server steps per dispatch")
  ap.add_argument(
    "--devices",
    type=int,
    default=1,
    help="devices the async waves are split over (1: vmap on one device)",
  )
  ap.add_argument("--repeats", type=int, default=2)
  args = ap.parse_args(argv)

  n, z, b, rounds = args.workers, args.local_steps, args.batch, args.rounds
  k = args.buffer or max(1, n // 2)
  steps = rounds * n // k
  chunk = args.chunk or steps
  if steps % chunk:
    raise SystemExit(f"--chunk {chunk} must divide the {steps} server steps.")
  params = init_mlp()
  nparams = sum(p.size for p in jax.tree.leaves(params))
  data = make_data(n, 1024)
  method = tailopt.get_method(
    "bi2clip",
    inner_lr=0.05,
    inner_upper=1.0,
    inner_lower=1e-4,
    outer_lr=1.0,
    outer_upper=0.05,
    outer_lower=1e-5,
  )
  print(
    f"devices: {len(jax.devices())} x {jax.devices()[0].platform}; MLP {DIMS}, "
    f"{nparams / 1e6:.2f}M params; N={n} workers, z={z} local steps, batch {b}"
  )

  # ---------------------------------------------------------------- synchronous
  rnd = tailopt.build_round(loss_fn, method, local_steps=z, num_clients=n)
  batch_fn = jax.jit(
    lambda d, r: jax.vmap(lambda w: job_batches(d, w, r, z, b))(jnp.arange(n)),
    out_shardings=rnd._shardings()[1],
  )

  def sync_run(num_rounds):
    st = rnd.init(params, seed=0)
    jax.block_until_ready(st)
    t0 = time.perf_counter()
    for r in range(num_rounds):
      st, m = rnd(st, batch_fn(data, r))
      jax.block_until_ready(m)
    return time.perf_counter() - t0, st

  sync_run(2)  # warm-up (compile)
  sync_times = [sync_run(rounds)[0] for _ in range(args.repeats)]
  sync_t = min(sync_times)
  sync_steps = rounds * n * z

  # ---------------------------------------------------------------- asynchronous
  clock = A.ClockConfig(
    num_workers=n,
    speeds="lognormal",
    speed_sigma=0.5,
    job_noise="lognormal",
    noise_sigma=0.25,
    seed=0,
  )
  cfg = A.AsyncConfig(
    scheme="buffered", buffer_size=k, local_steps=z, rate=A.RateConfig("polynomial", a=0.5)
  )
  sim = A.Simulator(
    loss_fn,
    method,
    lambda d, w, j, key: job_batches(d, w, j, z, b),
    clock=clock,
    config=cfg,
    num_steps=steps,
    data=data,
    devices=args.devices,
  )

  def async_run():
    t0 = time.perf_counter()
    st = sim.init(params, seed=0)
    jax.block_until_ready(st)
    for _ in range(steps // chunk):
      st, m = sim.run(st, chunk)  # blocks (metrics are fetched)
    return time.perf_counter() - t0, st, m

  async_run()  # warm-up (compile)
  async_times = [async_run()[0] for _ in range(args.repeats)]
  async_t = min(async_times)
  async_steps = sim.schedule.computed_local_steps
  stats = sim.tau_stats()
  waves = sim.wave_widths

  print(
    f"sync  : {rounds} rounds x {n} clients, {sync_steps} local steps, "
    f"{sync_t:.3f} s ({1e3 * sync_t / sync_steps:.2f} ms/local step)"
  )
  print(
    f"async : {steps} server steps (K={k}), {async_steps} local steps, "
    f"{async_t:.3f} s ({1e3 * async_t / async_steps:.2f} ms/local step); "
    f"(sub-waves, width) {waves}, tau max {stats['max']} mean {stats['mean']:.2f}, "
    f"simulated time {sim.schedule.tick_time[-1]:.1f} s"
  )
  if async_steps != sync_steps:
    print(f"note: local steps differ ({async_steps} vs {sync_steps})")
  print(f"ratio async/sync wall time: {async_t / sync_t:.3f}")


if __name__ == "__main__":
  main()

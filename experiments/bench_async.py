"""Asynchronous simulator benchmark: wave utilisation, jobs/s against K, async ÷ sync.

    python -m experiments.bench_async [--repeats 5] [--devices 1] [--quick]

Everything runs in one process on the same devices (``--devices``, default 1; the
synchronous round gets a mesh of the same devices) and trains the same ~1M-parameter MLP
(784-1024-256-10; the jobs/s runs at N = 256 a ~0.22M-parameter 784-256-64-10, so that
their ~500 in-flight Deltas fit in memory) with Bi²Clip; a job is z = ``--local-steps``
steps on minibatches of ``--batch`` (jobs/s: ``--small-batch``) examples.

1. **Utilisation** (the schedule only, nothing timed): useful jobs ÷ computed job slots of the
   waves at N = ``--util-workers`` (256) workers for K = 1, 2, 4, ..., N, with the bucketed
   wave plan (the default: pieces of power-of-two widths, :mod:`tailopt.asynchronous.waves`)
   and the padded one (every sub-wave at the widest width: the simulator before the plans).
2. **Jobs per second** at N = ``--util-workers`` for K in ``--ks``, both plans: each timing is
   one run, init and every server step (T = ceil(``--jobs`` / K), one dispatch each), blocked.
   Ratios: jobs/s at K ÷ jobs/s at K = 1, paired.
3. **Async ÷ sync**: a synchronous TailOPT run of R = ``--rounds`` rounds over N =
   ``--workers`` clients in one dispatch (``Round.multi``; its batches are built before the
   timing) against asynchronous runs that compute the same R·N jobs (init + all server
   steps): scheme A with K = N/2 on log-normal speeds (bucketed and padded), and K = N on
   equal speeds (the synchronous schedule itself, so the ratio is the simulator's overhead).

Timings are interleaved (every configuration once per repeat, round robin) and every ratio
is paired: the median and [min, max] over the repeats of the per-repeat ratio of two timings
taken in the same repeat. The load average is printed before the timings and after them
(the machine may be shared). Compile time is excluded (every function runs once first).
Prints tables; the last line is one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
  ).strip()

import argparse  # noqa: E402
import json  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import tailopt  # noqa: E402
from experiments.bench_round import time_it  # noqa: E402
from tailopt import asynchronous as A  # noqa: E402
from tailopt.asynchronous import waves as waves_lib  # noqa: E402

DIMS = (784, 1024, 256, 10)  # async ÷ sync: ~1.07M parameters
SMALL_DIMS = (784, 256, 64, 10)  # jobs/s at N = 256 (~0.22M; 500 in-flight Deltas fit)
DATA_WORKERS = 8  # distinct data shards; worker w reads shard w % 8 (timing only)


def init_mlp(dims=DIMS, seed=0):
  rng = np.random.default_rng(seed)
  params = {}
  for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
    params[f"w{i}"] = jnp.asarray(rng.normal(size=(a, b)) / np.sqrt(a), jnp.float32)
    params[f"b{i}"] = jnp.zeros((b,), jnp.float32)
  return params


def loss_fn(params, batch):
  x, y = batch
  h = x
  n = len(params) // 2
  for i in range(n):
    h = h @ params[f"w{i}"] + params[f"b{i}"]
    if i < n - 1:
      h = jax.nn.relu(h)
  logp = jax.nn.log_softmax(h)
  return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def make_data(per_worker, seed=1):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(DATA_WORKERS, per_worker, DIMS[0])).astype(np.float32)
  y = rng.integers(0, DIMS[-1], size=(DATA_WORKERS, per_worker)).astype(np.int32)
  return jnp.asarray(x), jnp.asarray(y)


def job_batches(data, worker, job, z, b):
  """Worker ``worker``'s ``job``-th job: z minibatches of b consecutive examples."""
  x, y = data
  n = x.shape[1]
  w = worker % DATA_WORKERS
  start = (job * z * b) % (n - z * b + 1)
  xs = jax.lax.dynamic_slice_in_dim(x[w], start, z * b, 0).reshape(z, b, -1)
  ys = jax.lax.dynamic_slice_in_dim(y[w], start, z * b, 0).reshape(z, b)
  return xs, ys


def _method():
  return tailopt.get_method(
    "bi2clip",
    inner_lr=0.05,
    inner_upper=1.0,
    inner_lower=1e-4,
    outer_lr=1.0,
    outer_upper=0.05,
    outer_lower=1e-5,
  )


def _clock(n, equal=False):
  if equal:
    return A.ClockConfig(num_workers=n, speeds="fixed", job_noise="none")
  return A.ClockConfig(
    num_workers=n, speeds="lognormal", speed_sigma=0.5, job_noise="lognormal", seed=0
  )


def _config(k, z):
  return A.AsyncConfig(
    scheme="buffered", buffer_size=k, local_steps=z, rate=A.RateConfig("polynomial", a=0.5)
  )


def utilisation_table(n, z, jobs, devices) -> dict:
  """``{K: {plan: utilisation}}`` at N = n for K = 1, 2, 4, ..., n (schedules only)."""
  ks = sorted({2**i for i in range(n.bit_length()) if 2**i <= n} | {n})
  out = {}
  for k in ks:
    sched = A.make_schedule(
      _clock(n), scheme="buffered", buffer_size=k, local_steps=z, num_steps=-(-jobs // k)
    )
    out[k] = {
      plan: waves_lib.plan_stats(*waves_lib.plan_schedule(sched, devices, plan))["utilisation"]
      for plan in waves_lib.PLANS
    }
  return out


class AsyncRun:
  """One asynchronous configuration, timed as init + every server step (blocked)."""

  def __init__(self, params, data, n, k, z, b, steps, devices, plan, equal=False):
    self.params = params
    self.sim = A.Simulator(
      loss_fn,
      _method(),
      lambda d, w, j, key: job_batches(d, w, j, z, b),
      clock=_clock(n, equal),
      config=_config(k, z),
      num_steps=steps,
      data=data,
      devices=devices,
      wave_plan=plan,
    )
    self.jobs = self.sim.wave_stats()["jobs"]
    self.local_steps = self.sim.schedule.computed_local_steps

  def __call__(self):
    st = self.sim.init(self.params, seed=0)
    st, m = self.sim.run(st)  # blocks (the metrics are fetched)
    return st.params


class SyncRun:
  """R synchronous TailOPT rounds over N clients in one ``Round.multi`` dispatch."""

  def __init__(self, params, data, n, z, b, rounds, devices):
    self.params = params
    self.rnd = tailopt.build_round(
      loss_fn,
      _method(),
      local_steps=z,
      num_clients=n,
      mesh=tailopt.client_mesh(num_devices=devices),
    )
    batch = jax.jit(
      lambda d: jax.vmap(lambda r: jax.vmap(lambda w: job_batches(d, w, r, z, b))(jnp.arange(n)))(
        jnp.arange(rounds)
      )
    )
    self.batches = jax.block_until_ready(batch(data))
    self.local_steps = rounds * n * z

  def __call__(self):
    st = self.rnd.init(self.params, seed=0)
    st, m = self.rnd.multi(st, self.batches)
    return st.params, m


def interleaved(runs: dict, repeats: int) -> dict:
  """Warms every run up, then times each once per repeat, round robin: ``{name: [s]}``."""
  for fn in runs.values():
    jax.block_until_ready(fn())
  times = {k: [] for k in runs}
  for _ in range(repeats):
    for k, fn in runs.items():
      times[k].append(time_it(fn, 1))
  return times


def paired(times, a, b, a_per=1.0, b_per=1.0) -> dict:
  """Per-repeat ratio of (a's time / a_per) to (b's time / b_per): median, [min, max]."""
  r = (np.asarray(times[a]) / a_per) / (np.asarray(times[b]) / b_per)
  return dict(median=float(np.median(r)), range=[float(r.min()), float(r.max())])


def _parse(argv):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--devices", type=int, default=1, help="devices both sides run on")
  ap.add_argument("--local-steps", type=int, default=4)
  ap.add_argument("--batch", type=int, default=32, help="examples per local step (async ÷ sync)")
  ap.add_argument("--workers", type=int, default=8, help="N of the async ÷ sync comparison")
  ap.add_argument("--rounds", type=int, default=12, help="R synchronous rounds")
  ap.add_argument("--util-workers", type=int, default=256, help="N of utilisation and jobs/s")
  ap.add_argument("--ks", default="1,16,256", help="K values of the jobs/s measurement")
  ap.add_argument("--jobs", type=int, default=1024, help="jobs per jobs/s run")
  ap.add_argument("--small-batch", type=int, default=8, help="examples per step (jobs/s)")
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--quick", action="store_true", help="a tiny smoke run (tests)")
  args = ap.parse_args(argv)
  if args.quick:
    args.util_workers, args.ks, args.jobs, args.rounds, args.repeats = 16, "1,16", 16, 2, 2
    args.batch = args.small_batch = 2
  return args


def _throughput(args, data) -> tuple:
  n, z = args.util_workers, args.local_steps
  params = init_mlp(SMALL_DIMS)
  ks = [int(k) for k in args.ks.split(",")]
  if ks[0] != 1 or any(not 1 <= k <= n for k in ks):
    raise SystemExit(f"--ks {args.ks}: start with 1; every K between 1 and N={n}.")
  runs = {}
  for k in ks:
    for plan in waves_lib.PLANS:
      runs[(k, plan)] = AsyncRun(
        params, data, n, k, z, args.small_batch, -(-args.jobs // k), args.devices, plan
      )
  return ks, runs


def _print_tables(util, ks, thr, ratios, n):
  print(f"\nutilisation (useful jobs / computed slots), N = {n}:")
  print("  K      " + "  ".join(f"{k:>5}" for k in util))
  for plan in waves_lib.PLANS:
    print(f"  {plan:<7}" + "  ".join(f"{util[k][plan]:5.2f}" for k in util))
  print(f"\njobs/s, N = {n} (median over repeats; ratio to K = 1 paired, median [min-max]):")
  for plan in waves_lib.PLANS:
    for k in ks:
      r = thr[plan][k]
      print(
        f"  {plan:<8} K={k:<4} {r['jobs_per_s']:8.1f} jobs/s   ÷ K=1: "
        f"{r['vs_k1']['median']:.2f} [{r['vs_k1']['range'][0]:.2f}-{r['vs_k1']['range'][1]:.2f}]"
      )
  print("\nwall time, async ÷ fused sync, same local steps (paired, median [min-max]):")
  for name, r in ratios.items():
    print(f"  {name:<34} {r['median']:.3f} [{r['range'][0]:.3f}-{r['range'][1]:.3f}]")


def main(argv=None):
  args = _parse(argv)
  n, z, d = args.workers, args.local_steps, args.devices
  if not 1 <= d <= len(jax.devices()):
    raise SystemExit(f"--devices {d}: between 1 and {len(jax.devices())}.")
  if n % d:
    raise SystemExit(f"--workers {n} must be a multiple of --devices {d} (the sync round).")
  params = init_mlp()
  data = make_data(max(1024, 2 * z * max(args.batch, args.small_batch)))
  nparams = sum(p.size for p in jax.tree.leaves(params))
  print(
    f"devices: {d} of {len(jax.devices())} x {jax.devices()[0].platform}; MLP {DIMS}, "
    f"{nparams / 1e6:.2f}M params (jobs/s: MLP {SMALL_DIMS}); z={z}"
  )
  util = utilisation_table(args.util_workers, z, 4 * args.util_workers, d)

  ks, thr_runs = _throughput(args, data)
  runs = {("thr",) + key: r for key, r in thr_runs.items()}
  k_half = max(1, n // 2)
  steps = args.rounds * n // k_half
  runs[("sync",)] = SyncRun(params, data, n, z, args.batch, args.rounds, d)
  for name, (k, t, plan, equal) in {
    f"async K={k_half} lognormal, bucketed": (k_half, steps, "bucketed", False),
    f"async K={k_half} lognormal, padded": (k_half, steps, "padded", False),
    f"async K={n} equal speeds, bucketed": (n, args.rounds, "bucketed", True),
  }.items():
    runs[(name,)] = AsyncRun(params, data, n, k, z, args.batch, t, d, plan, equal)
    assert runs[(name,)].local_steps == runs[("sync",)].local_steps, name

  load_before = os.getloadavg()
  print(
    f"# load average before the timings: {load_before[0]:.2f} {load_before[1]:.2f} "
    f"{load_before[2]:.2f} (1, 5, 15 min; {os.cpu_count()} CPUs)"
  )
  times = interleaved(runs, args.repeats)
  load_after = os.getloadavg()
  print(f"# load average after the timings: {load_after[0]:.2f}")

  thr = {plan: {} for plan in waves_lib.PLANS}
  for (k, plan), r in thr_runs.items():
    key = ("thr", k, plan)
    thr[plan][k] = dict(
      jobs=r.jobs,
      jobs_per_s=float(np.median(r.jobs / np.asarray(times[key]))),
      # jobs/s at K over jobs/s at K = 1 = (t1 / jobs1) / (tK / jobsK), per repeat
      vs_k1=paired(times, ("thr", 1, plan), key, thr_runs[(1, plan)].jobs, r.jobs),
      wave_widths=r.sim.wave_widths,
    )
  ratios = {name: paired(times, (name,), ("sync",)) for (name, *_) in runs if name != "thr"}
  ratios.pop("sync")
  _print_tables(util, ks, thr, ratios, args.util_workers)
  out = dict(
    devices=d,
    local_steps=z,
    load_average_before=list(load_before),
    load_average_after=list(load_after),
    repeats=args.repeats,
    ratios="paired: median over the repeats of the per-repeat ratio; range: [min, max]",
    utilisation={str(k): v for k, v in util.items()},
    jobs_per_s={p: {str(k): v for k, v in r.items()} for p, r in thr.items()},
    async_over_sync=ratios,
    samples_s={" ".join(map(str, k)): list(map(float, v)) for k, v in times.items()},
  )
  print(json.dumps(out))


if __name__ == "__main__":
  main()

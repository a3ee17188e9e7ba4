"""Round-time and optimizer-memory benchmark: ``python -m experiments.bench_round``.

Measures, side by side in one process, the median wall time of one TailOPT round for
bi2clip, fedavg, adam-biclip, adam2 and diloco on an MLP of >= 1M parameters, and of the
bare work: the same number of ``value_and_grad`` calls (plain ``x -= lr * g`` steps, no
optimizer transform, no averaging, no outer step) in the same shard_map/scan/vmap layout,
and of the floor of any synchronous round: that bare work plus each client's Delta, one
``psum`` of the Deltas and their mean applied (``/floor``: what a method adds beyond
averaging itself: its rules, the per-step non-finite check, the metrics). Two data-parallel
loops over the same examples and steps are the baselines a user would otherwise write: the
primary one (``data parallel``, ``/DP``) is a ``shard_map`` over the client axis with one
``pmean`` of the gradient per step (issue 20 reports it 1.13-1.34x faster than the second);
the second (``data parallel (GSPMD)``, ``/DP-GSPMD``) is the same SGD written on the global
batch and partitioned by GSPMD (both give the same parameters: checked once,
``data_parallel_max_abs_diff``).
The baselines compile with the round's XLA options (``tailopt.rounds.compiler_options``: on
CPU, copy insertion with region analysis, so every scan updates its carry in place).
Every baseline and method is timed once per repeat, round-robin, and each ratio is paired:
the median (and min-max range) over the repeats of the per-repeat ratio of two timings
taken in the same repeat, not a ratio of medians. The load average is recorded before the
timings (and after them). Optimizer-state bytes are measured from the state pytrees (per
node and on the server).
The stateful outer rules (``--replicated``) are also timed with ``shard_outer=False`` (the
outer rule replicated on every device after an all-reduce), beside the default sharded step.
Compressed variants of the first method (``--compressors``) are timed in the same
interleaved loop, with the bytes a node sends per round. Prints tables and, as the last
line, one JSON object.

Runs on 8 emulated CPU devices by default (``--devices``); on a GPU pass ``--devices 0``
(no emulation: the mesh then uses the real accelerators).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _parse():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--devices", type=int, default=8, help="CPU devices to emulate (0: keep)")
  p.add_argument("--clients", type=int, default=8)
  p.add_argument("--local-steps", type=int, default=4)
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--width", type=int, default=512)
  p.add_argument("--depth", type=int, default=5)
  p.add_argument("--repeats", type=int, default=21)
  p.add_argument("--methods", default="bi2clip,fedavg,adam-biclip,adam2,diloco")
  p.add_argument(
    "--compressors",
    default="int8,int4,fp8,fixed8,ef+int4,stream4",
    help="compressed variants of the first method: int<b>, sr-int<b>, fp8, "
    "fixed<b> (BiClip range grid), top<k> (k of every 256), sign, ef+<x> (error "
    "feedback), stream<F>",
  )
  p.add_argument(
    "--unchecked",
    default="fedavg,bi2clip",
    help="methods also timed with check_finite=False (no per-step non-finite check)",
  )
  p.add_argument(
    "--replicated",
    default="adam2,diloco",
    help="methods also timed with shard_outer=False (the outer rule replicated on every "
    "device after an all-reduce, instead of split over them)",
  )
  p.add_argument(
    "--mesh-model",
    type=int,
    default=4,
    help="model-axis size of the 2-D mesh row (0: skip the row)",
  )
  p.add_argument(
    "--init-clients",
    type=int,
    default=128,
    help="clients of the init-memory measurement (0: skip it)",
  )
  p.add_argument(
    "--fused",
    type=int,
    default=25,
    help="rounds per fused dispatch in the main-job measurement (0: skip it)",
  )
  p.add_argument(
    "--many-clients",
    type=int,
    default=64,
    help="also time fedavg with this many clients (several per device) for the "
    "per-example ratio against --clients (0: skip)",
  )
  p.add_argument("--section", default="all", choices=["all", "init-memory"], help=argparse.SUPPRESS)
  return p.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None and ARGS.devices > 0 and "jax" not in sys.modules:
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={ARGS.devices}"
  )

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

import tailopt  # noqa: E402
from tailopt.rounds import compiler_options  # noqa: E402


def mlp_init(key, d_in, width, depth, n_out):
  dims = [d_in] + [width] * depth + [n_out]
  params = {}
  for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
    key, k = jax.random.split(key)
    params[f"layer{i}"] = {"w": jax.random.normal(k, (a, b)) / np.sqrt(a), "b": jnp.zeros(b)}
  return params


def mlp_loss(params, batch):
  h = batch["x"]
  n = len(params)
  for i in range(n):
    h = h @ params[f"layer{i}"]["w"] + params[f"layer{i}"]["b"]
    if i < n - 1:
      h = jax.nn.gelu(h)
  logp = jax.nn.log_softmax(h)
  return -jnp.mean(jnp.take_along_axis(logp, batch["y"][:, None], axis=1))


def tree_bytes(tree) -> int:
  return int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree)))


def bare_work(loss_fn, mesh, z, clients, lr=0.01, average=False):
  """z value_and_grad + SGD steps per client in the round's layout (shard_map over the
  clients, scan over the steps, vmap over a device's clients when it holds several),
  nothing else: no optimizer transform, no averaging, no outer step.

  ``average=True``: the least a synchronous round adds to that, the floor of every
  method: each client's Delta, one ``psum`` of the Deltas over the clients, and the
  global model moved by their mean (plain FedAvg, no metrics, no checks)."""
  grad = jax.value_and_grad(loss_fn)
  k = clients // mesh.shape["clients"]

  def client(x, batches):
    def step(x, b):
      loss, g = grad(x, b)
      return jax.tree.map(lambda p, q: p - lr * q, x, g), loss

    return jax.lax.scan(step, x, batches)

  def body(params, batch):
    x = jax.tree.map(lambda p: jax.lax.pcast(p, "clients", to="varying"), params)
    if k == 1:
      out = jax.tree.map(lambda a: a[None], client(x, jax.tree.map(lambda a: a[0], batch)))
    else:
      out = jax.vmap(client, in_axes=(None, 0))(x, batch)
    if not average:
      return out
    x_end, losses = out
    total = jax.tree.map(
      lambda p, e: jax.lax.psum(jnp.sum(p[None] - e, axis=0), "clients"), x, x_end
    )
    return jax.tree.map(lambda p, t: p - t * (1.0 / clients), params, total), losses

  first = P() if average else P("clients")
  f = jax.shard_map(body, mesh=mesh, in_specs=(P(), P("clients")), out_specs=(first, P("clients")))
  return jax.jit(f, compiler_options=compiler_options(mesh))


def data_parallel_shard_map(loss_fn, mesh, z, lr=0.01):
  """The primary data-parallel loop over the same examples: ``shard_map`` over the
  clients axis, each device holding its slice of the global batch (every client's s-th
  minibatch, split over the devices). Each step: ``value_and_grad`` on the device's slice,
  one ``lax.pmean`` of the gradient, an SGD update; the z steps in one ``lax.scan``, jitted,
  params donated. Only the gradient crosses devices (the losses stay on their device)."""
  grad = jax.value_and_grad(loss_fn)

  def body(params, batch):  # batch leaves: (z, clients * B / devices, ...) on each device
    def step(x, b):
      # The local gradient (x made varying, so grad does not sum it over the devices),
      # then one explicit mean over the devices.
      loss, g = grad(jax.tree.map(lambda p: jax.lax.pcast(p, "clients", to="varying"), x), b)
      g = jax.lax.pmean(g, "clients")
      return jax.tree.map(lambda p, q: p - lr * q, x, g), loss

    return jax.lax.scan(step, params, batch)

  f = jax.shard_map(
    body, mesh=mesh, in_specs=(P(), P(None, "clients")), out_specs=(P(), P("clients"))
  )
  return jax.jit(f, donate_argnums=0, compiler_options=compiler_options(mesh))


def data_parallel(loss_fn, mesh, z, lr=0.01):
  """Plain optax data parallelism written on the global batch (the second, GSPMD column):
  z steps of SGD on the global batch (the clients' minibatches of a step together, split
  over the devices), the gradient averaged every step (GSPMD all-reduce), all z steps in
  one jitted scan. Same arithmetic as :func:`data_parallel_shard_map` (issue 20 reports this
  one 1.13-1.34x slower)."""
  tx = optax.sgd(lr)
  grad = jax.value_and_grad(loss_fn)
  rep = NamedSharding(mesh, P())

  def steps(params, opt_state, batch):  # batch leaves: (z, clients * B, ...)
    def step(carry, b):
      x, s = carry
      loss, g = grad(x, b)
      u, s = tx.update(g, s, x)
      return (optax.apply_updates(x, u), s), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), batch)
    return params, opt_state, losses

  fn = jax.jit(
    steps,
    out_shardings=(rep, rep, rep),
    donate_argnums=(0, 1),
    compiler_options=compiler_options(mesh),
  )
  return fn, tx


def naive_loop(loss_fn, method, z):
  """The per-client Python loop a first implementation writes: each client's z inner
  steps one jitted call at a time on one device, then the mean Delta and the outer step."""
  inner, outer = method.inner, method.outer
  grad = jax.grad(loss_fn)

  @jax.jit
  def client(x, batches):
    def step(carry, b):
      y, s = carry
      u, s = inner.update(grad(y, b), s, y)
      return (optax.apply_updates(y, u), s), None

    (y, _), _ = jax.lax.scan(step, (x, inner.init(x)), batches)
    return jax.tree.map(lambda a, b: a - b, x, y)

  @jax.jit
  def server(x, s, deltas):
    mean = jax.tree.map(lambda *d: sum(d) / len(d), *deltas)
    u, s = outer.update(mean, s, x)
    return optax.apply_updates(x, u), s

  def round_(x, s, per_client_batches):
    deltas = [client(x, b) for b in per_client_batches]
    return server(x, s, deltas)

  return round_, outer.init


def compressed_round(spec: str, method, z: int) -> dict:
  """build_round keyword arguments for a ``--compressors`` entry."""
  from tailopt import compression as C

  if spec.startswith("stream"):
    return {"fragments": int(spec[len("stream") :])}
  ef = spec.startswith("ef+")
  spec = spec[3:] if ef else spec
  if spec == "fp8":
    comp = C.fp8_quantizer(256)
  elif spec.startswith("fixed"):
    comp = C.fixed_range_quantizer(C.biclip_delta_bound(method, z), int(spec[5:]))
  elif spec.startswith(("int", "sr-int")):
    comp = C.int_quantizer(int(spec.split("int")[1]), 256, spec.startswith("sr-"))
  elif spec.startswith("top"):  # top<k>: k of every 256-coordinate chunk, float32 values
    comp = C.topk_sparsifier(int(spec[3:]), 256)
  elif spec == "sign":
    comp = C.sign_quantizer(256)
  else:
    raise SystemExit(f"unknown --compressors entry {spec!r}")
  return {"compressor": C.error_feedback(comp) if ef else comp}


def init_memory(args) -> dict:
  """Peak resident memory that ``Round.init`` adds, over the state's bytes (adam2, many
  clients: the per-client Adam moments dominate). Run in a fresh process."""
  import gc

  params = jax.block_until_ready(mlp_init(jax.random.key(0), 256, args.width, args.depth, 10))
  rnd = tailopt.build_round(
    mlp_loss, tailopt.get_method("adam2"), local_steps=1, num_clients=args.init_clients
  )
  gc.collect()

  def status(field):  # kB in /proc/self/status (Linux)
    for line in open("/proc/self/status"):
      if line.startswith(field + ":"):
        return int(line.split()[1]) * 1024
    raise SystemExit(f"--init-clients needs Linux /proc ({field} not found)")

  with open("/proc/self/clear_refs", "w") as f:  # restart the peak (VmHWM) from now
    f.write("5")
  before = status("VmRSS")
  state = jax.block_until_ready(rnd.init(params))  # compile + build (the first init)
  peak = status("VmHWM")
  state_b = tree_bytes(state)
  return {
    "clients": args.init_clients,
    "state_bytes": state_b,
    "peak_rss_growth_bytes": peak - before,
    "ratio": (peak - before) / state_b,
  }


def fused_rounds(R: int, repeats: int) -> dict:
  """The main job's round (configs/synthetic.py: least squares, Bi2Clip, 8 clients):
  R rounds as R jitted calls against one ``Round.multi`` dispatch of R rounds."""
  from experiments import cli, tasks
  from experiments.engines.build import make_method
  from experiments.engines.sync import make_round
  from tailopt.data.batching import ClientBatches

  config = cli.load_config("configs/synthetic.py", [])
  data, model = tasks.build_task(config)
  method = make_method(config)
  batches = ClientBatches(
    data,
    local_steps=config.local_steps,
    batch_size=config.batch_size,
    seed=0,
    clients_per_round=config.clients,
  )
  rnd = make_round(config, model, method, batches)
  parts = [batches(t) for t in range(R)]
  placed = [rnd.shard_batch(b) for b in parts]
  stacked = jax.device_put({k: np.stack([b[k] for b in parts]) for k in parts[0]})
  st = {
    "sep": rnd.init(model.init(jax.random.key(0))),
    "fused": rnd.init(model.init(jax.random.key(0))),
  }

  def separate():
    for b in placed:
      st["sep"], m = rnd(st["sep"], b)
      jax.block_until_ready(m)  # the loop reads every round's metrics
    return m

  def fused():
    st["fused"], m = rnd.multi(st["fused"], stacked)
    return m

  separate(), fused()
  ts = {"sep": [], "fused": []}
  for _ in range(repeats):
    ts["sep"].append(time_it(separate, 1))
    ts["fused"].append(time_it(fused, 1))
  sep, fus = float(np.median(ts["sep"])), float(np.median(ts["fused"]))
  speedup = np.asarray(ts["sep"]) / np.asarray(ts["fused"])  # paired, per repeat
  return {
    "rounds": R,
    "separate_s": sep,
    "fused_s": fus,
    "speedup": float(np.median(speedup)),
    "speedup_range": [float(speedup.min()), float(speedup.max())],
  }


def time_it(fn, repeats):
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def _batch(rng, clients, z, B, d_in, n_out) -> dict:
  return {
    "x": rng.normal(size=(clients, z, B, d_in)).astype(np.float32),
    "y": rng.integers(0, n_out, size=(clients, z, B)).astype(np.int32),
  }


def targets(paired, many, C: int, methods) -> list:
  """Issue 20's targets for the round, each a paired ratio (median, [min, max]) with its
  bound: what tailopt adds beyond averaging, what BiClip adds to FedAvg, several clients per
  device against one (per example), and a stateful outer rule against FedAvg."""
  rows = []

  def add(label, a, b, bound, scale=1.0):
    if a is None or b is None:
      return
    med, (lo, hi) = paired(a, b)
    rows.append(dict(target=label, ratio=med * scale, range=[lo * scale, hi * scale], bound=bound))

  if "fedavg" in methods:
    add("fedavg / (bare work + averaging)", "fedavg", "bare + average", 1.03)
    add("bi2clip / fedavg", "bi2clip" if "bi2clip" in methods else None, "fedavg", 1.03)
    add("adam2 / fedavg", "adam2" if "adam2" in methods else None, "fedavg", 1.10)
    if many is not None:
      n = int(many.split()[1])
      add(f"per example, {n} clients / {C}", many, "fedavg", 1.05, C / n)
  return rows


def main(args):
  if args.section == "init-memory":
    print(json.dumps(init_memory(args)))
    return
  mesh = tailopt.client_mesh()
  n_dev = mesh.shape["clients"]
  d_in, n_out = 256, 10
  params = mlp_init(jax.random.key(0), d_in, args.width, args.depth, n_out)
  n_params = sum(x.size for x in jax.tree.leaves(params))
  rng = np.random.default_rng(0)
  C, z, B = args.clients, args.local_steps, args.batch
  batch = _batch(rng, C, z, B, d_in, n_out)
  print(
    f"# devices={n_dev} ({jax.devices()[0].platform}) clients={C} z={z} batch={B} "
    f"MLP params={n_params:,} ({tree_bytes(params) / 2**20:.1f} MiB) "
    f"load average {os.getloadavg()[0]:.2f}"
  )

  # Interleave the measurements (round-robin) so drift affects every method alike.
  runners = {}
  bare = bare_work(mlp_loss, mesh, z, C)
  bbatch = jax.device_put(batch, NamedSharding(mesh, P("clients")))
  jax.block_until_ready(bare(params, bbatch))
  runners["bare"] = lambda: bare(params, bbatch)
  floor = bare_work(mlp_loss, mesh, z, C, average=True)
  floor_params = [jax.device_put(params, NamedSharding(mesh, P()))]

  def run_floor():
    floor_params[0], losses = floor(floor_params[0], bbatch)
    return losses

  jax.block_until_ready(run_floor())
  runners["bare + average"] = run_floor
  # Data parallel: step s takes every client's s-th minibatch, split over the devices.
  dp, dp_tx = data_parallel(mlp_loss, mesh, z)
  dp_batch = jax.device_put(
    {k: np.swapaxes(v, 0, 1).reshape((z, C * B) + v.shape[3:]) for k, v in batch.items()},
    NamedSharding(mesh, P(None, "clients")),
  )
  dp_state = list(jax.device_put((params, dp_tx.init(params)), NamedSharding(mesh, P())))
  dp_state = list(jax.tree.map(jnp.copy, dp_state))

  def run_dp():
    dp_state[0], dp_state[1], losses = dp(dp_state[0], dp_state[1], dp_batch)
    return losses

  jax.block_until_ready(run_dp())
  # The primary data-parallel column: the same steps as a shard_map loop (params donated).
  dps = data_parallel_shard_map(mlp_loss, mesh, z)
  dps_params = [jax.tree.map(jnp.copy, jax.device_put(params, NamedSharding(mesh, P())))]

  def run_dps():
    dps_params[0], losses = dps(dps_params[0], dp_batch)
    return losses

  jax.block_until_ready(run_dps())
  # One call each from the same params: the two loops do the same arithmetic.
  dp_diff = max(
    float(jnp.max(jnp.abs(a - b)))
    for a, b in zip(jax.tree.leaves(dps_params[0]), jax.tree.leaves(dp_state[0]))
  )
  runners["data parallel"] = run_dps
  runners["data parallel (GSPMD)"] = run_dp
  naive, naive_init = naive_loop(mlp_loss, tailopt.get_method(args.methods.split(",")[0]), z)
  per_client = [jax.device_put({k: v[i] for k, v in batch.items()}) for i in range(C)]
  naive_state = [jax.device_put(params), None]
  naive_state[1] = naive_init(naive_state[0])

  def run_naive():
    naive_state[0], naive_state[1] = naive(naive_state[0], naive_state[1], per_client)
    return naive_state[0]

  jax.block_until_ready(run_naive())
  runners["naive loop"] = run_naive
  states = {}
  methods = args.methods.split(",")
  variants = {name: (name, {}) for name in methods}
  for spec in filter(None, args.compressors.split(",")):
    variants[f"{methods[0]}+{spec}"] = (
      methods[0],
      compressed_round(spec, tailopt.get_method(methods[0]), z),
    )
  mesh_row = None
  if args.mesh_model > 1 and n_dev % args.mesh_model == 0 and C % (n_dev // args.mesh_model) == 0:
    mesh_row = f"{methods[0]} 2-D"
    variants[mesh_row] = (methods[0], {"mesh": tailopt.client_mesh(model=args.mesh_model)})
  unchecked = [f"{m} unchecked" for m in filter(None, args.unchecked.split(","))]
  for name in unchecked:
    variants[name] = (name.split()[0], {"check_finite": False})
  replicated = [f"{m} replicated" for m in filter(None, args.replicated.split(","))]
  for name in replicated:
    variants[name] = (name.split()[0], {"shard_outer": False})
  many = None
  if args.many_clients and "fedavg" in methods and args.many_clients != C:
    many = f"fedavg {args.many_clients} clients"
    variants[many] = ("fedavg", {"num_clients": args.many_clients})
  for name, (method_name, extra) in variants.items():
    extra = dict(extra)
    n_clients = extra.pop("num_clients", C)
    vbatch = batch if n_clients == C else _batch(rng, n_clients, z, B, d_in, n_out)
    rnd = tailopt.build_round(
      mlp_loss,
      tailopt.get_method(method_name),
      local_steps=z,
      num_clients=n_clients,
      mesh=extra.pop("mesh", mesh),
      **extra,
    )
    states[name] = [rnd.init(params), rnd, rnd.shard_batch(vbatch)]
    st, m = rnd(states[name][0], states[name][2])  # compile + warm up
    states[name][0] = jax.block_until_ready(st)
    states[name].append(jax.device_get(m))

    def run(name=name):
      s = states[name]
      s[0], m = s[1](s[0], s[2])
      return m

    runners[name] = run
  load_before = os.getloadavg()
  print(
    f"# load average before the timings: {load_before[0]:.2f} {load_before[1]:.2f} "
    f"{load_before[2]:.2f} (1, 5, 15 min; {os.cpu_count()} CPUs)"
  )
  samples = {k: [] for k in runners}
  for _ in range(args.repeats):
    for k, fn in runners.items():
      samples[k].append(time_it(fn, 1))
  med = {k: float(np.median(v)) for k, v in samples.items()}
  times = {k: np.asarray(v) for k, v in samples.items()}

  def paired(a, b):
    """The per-repeat ratios of a's time to b's (both timed in the same repeat): their
    median and their [min, max] over the repeats."""
    r = times[a] / times[b]
    return float(np.median(r)), [float(r.min()), float(r.max())]

  out = {
    "model_params": n_params,
    "devices": n_dev,
    "clients": C,
    "local_steps": z,
    "repeats": args.repeats,
    "ratios": "paired: median over the repeats of the per-repeat ratio; *_range: [min, max]",
    "bare_round_s": med["bare"],
    "load_average_before": list(load_before),  # 1, 5, 15 min, before the timings
    "load_average_1min": os.getloadavg()[0],  # after the timings: was the machine idle?
    "methods": {},
    "samples_s": {k: list(map(float, v)) for k, v in samples.items()},  # per repeat, in order
  }
  out["data_parallel_s"] = med["data parallel"]  # the shard_map loop (primary)
  out["data_parallel_gspmd_s"] = med["data parallel (GSPMD)"]
  out["data_parallel_max_abs_diff"] = dp_diff  # shard_map vs GSPMD params after one call
  out["naive_loop_s"] = med["naive loop"]
  out["bare_average_s"] = med["bare + average"]
  # The ratio columns: name in the JSON, header, runner it divides by.
  columns = [
    ("bare", "/bare", "bare"),
    ("bare_average", "/floor", "bare + average"),
    ("data_parallel", "/DP", "data parallel"),
    ("data_parallel_gspmd", "/DP-GSPMD", "data parallel (GSPMD)"),
    ("naive_loop", "/naive", "naive loop"),
  ]
  widths = [8, 8, 7, 11, 8]

  def ratios(name):
    r = {}
    for key, _, ref in columns:
      r[f"ratio_to_{key}"], r[f"ratio_to_{key}_range"] = paired(name, ref)
    return r

  def row(label, name, extra="", rf=None):
    r = ratios(name)
    cells = "".join(f"{r[f'ratio_to_{k}']:>{w}.3f}" for (k, _, _), w in zip(columns, widths))
    rf = "" if rf is None else f"{rf:.3f}"
    print(f"{label:<22}{med[name] * 1e3:>9.1f}{rf:>9}{cells}{extra}")
    return r

  def range_row(label, r):
    cells = "".join(
      f"{'{:.2f}-{:.2f}'.format(*r[f'ratio_to_{k}_range']):>12}" for k, _, _ in columns
    )
    print(f"{label:<22}{cells}")

  header = "".join(f"{h:>{w}}" for (_, h, _), w in zip(columns, widths))
  print(f"\n{'method':<22}{'round ms':>9}{'/fedavg':>9}{header}{'node B':>12}{'server B':>12}")
  baselines = {
    "bare work": ("bare", ""),
    "bare + average": ("bare + average", "   (floor: + Delta, one psum, the mean applied)"),
    "data parallel": ("data parallel", "   (shard_map, one pmean of the gradient per step)"),
    "data parallel (GSPMD)": ("data parallel (GSPMD)", "   (the same SGD on the global batch)"),
    "naive loop": ("naive loop", f"   ({methods[0]}, one client at a time)"),
  }
  out["baselines"] = {}
  for label, (name, extra) in baselines.items():
    out["baselines"][name] = {"median_round_s": med[name], **row(label, name, extra)}
  for name in methods + unchecked + replicated:
    state, rnd = states[name][0], states[name][1]
    node_b = tree_bytes(state.inner_state) // C
    server_b = tree_bytes(state.outer_state)
    rf, rf_range = paired(name, "fedavg") if "fedavg" in med else (None, None)
    r = {
      "median_round_s": med[name],
      "ratio_to_fedavg": rf,
      "ratio_to_fedavg_range": rf_range,
      **ratios(name),
      "node_state_bytes": node_b,
      "server_state_bytes": server_b,
      "node_state_param_copies": round(node_b / tree_bytes(params), 3),
      "server_state_param_copies": round(server_b / tree_bytes(params), 3),
    }
    out["methods"][name] = r
    row(name, name, f"{node_b:>12,}{server_b:>12,}", rf)
  print(f"\nthe same ratios' range over the {args.repeats} repeats (min-max):")
  print(f"{'method':<22}" + "".join(f"{h:>12}" for _, h, _ in columns))
  for label, (name, _) in baselines.items():
    range_row(label, out["baselines"][name])
  for name in methods + unchecked + replicated:
    range_row(name, out["methods"][name])
  if mesh_row is not None:
    st2 = states[mesh_row][0]
    per_dev = lambda tree: max(  # noqa: E731
      sum(
        sh.data.nbytes
        for x in jax.tree.leaves(tree)
        for sh in x.addressable_shards
        if sh.device == d
      )
      for d in jax.devices()
    )
    ratio_1d, ratio_1d_range = paired(mesh_row, methods[0])
    r = {
      "mesh": f"{n_dev // args.mesh_model} clients x {args.mesh_model} model",
      "median_round_s": med[mesh_row],
      "ratio_to_1d": ratio_1d,
      "ratio_to_1d_range": ratio_1d_range,
      "params_bytes_per_device": per_dev(st2.params),
      "params_bytes_per_device_1d": per_dev(states[methods[0]][0].params),
    }
    out["mesh_2d"] = r
    print(
      f"\n{mesh_row:<14}{med[mesh_row] * 1e3:>10.1f}   ({r['mesh']}: "
      f"{r['ratio_to_1d']:.2f}x the 1-D round; params per device "
      f"{r['params_bytes_per_device']:,} B vs {r['params_bytes_per_device_1d']:,} B; "
      f"{C // (n_dev // args.mesh_model)} clients per group)"
    )
  base = methods[0]
  out["compressed"] = {}
  print(f"\n{'variant':<22}{'round ms':>10}{f'/{base}':>10}{'bytes up':>12}{'/fp32':>8}")
  up0 = float(states[base][3]["bytes_up"])
  for name in variants:
    if name in methods or name in (mesh_row, many) or name in unchecked + replicated:
      continue
    up = float(states[name][3]["bytes_up"])
    ratio, ratio_range = paired(name, base)
    r = {
      "median_round_s": med[name],
      "ratio_to_uncompressed": ratio,
      "ratio_to_uncompressed_range": ratio_range,
      "bytes_up": up,
      "bytes_ratio": up / up0,
    }
    out["compressed"][name] = r
    print(
      f"{name:<22}{med[name] * 1e3:>10.1f}{r['ratio_to_uncompressed']:>10.3f}"
      f"{int(up):>12,}{r['bytes_ratio']:>8.3f}"
    )
  out["targets"] = targets(paired, many, C, methods)
  print(f"\n{'target (paired, median and min-max)':<40}{'ratio':>8}{'range':>13}{'bound':>7}")
  for t in out["targets"]:
    met = "met" if t["ratio"] <= t["bound"] else "MISSED"
    lo, hi = t["range"]
    print(f"{t['target']:<40}{t['ratio']:>8.3f}{f'{lo:.2f}-{hi:.2f}':>13}{t['bound']:>7.2f}  {met}")
  if args.fused:
    f = fused_rounds(args.fused, max(3, args.repeats // 3))
    out["fused"] = f
    print(
      f"\nmain job (configs/synthetic.py), {f['rounds']} rounds: separate calls "
      f"{f['separate_s'] * 1e3:.1f} ms, one fused dispatch {f['fused_s'] * 1e3:.1f} ms: "
      f"{f['speedup']:.2f}x faster ({f['speedup_range'][0]:.2f}-{f['speedup_range'][1]:.2f})"
    )
  if args.init_clients:
    import subprocess

    cmd = [
      sys.executable,
      "-m",
      "experiments.bench_round",
      "--section",
      "init-memory",
      "--init-clients",
      str(args.init_clients),
      "--width",
      str(args.width),
      "--depth",
      str(args.depth),
      "--devices",
      str(args.devices),
    ]
    res = subprocess.run(
      cmd,
      capture_output=True,
      text=True,
      check=True,
      env={**os.environ, "XLA_FLAGS": ""} if args.devices > 0 else None,
    )
    im = json.loads(res.stdout.strip().splitlines()[-1])
    out["init_memory"] = im
    print(
      f"init (adam2, {im['clients']} clients): peak memory growth "
      f"{im['peak_rss_growth_bytes'] / 2**20:.0f} MiB for a {im['state_bytes'] / 2**20:.0f} "
      f"MiB state: {im['ratio']:.2f}x"
    )
  print(json.dumps(out))


if __name__ == "__main__":
  main(ARGS)

"""How heavy-tailed is each model's stochastic-gradient noise? Per parameter group.

    python -m experiments.tail_index --out experiments/results/tail_index [--families ...]

For each family it builds the model and data from the family's config (small variants of
the real models). Models trained from scratch are first warmed up with 100 Adam steps
(lr 1e-3) on the pooled training data -- at initialisation the noise is degenerate (a
zero-initialised head passes no gradient to the layers below); pretrained models are
measured at their pretrained weights. At that point ``x0`` it takes ``K`` independent draws
of two random vectors:

* **gradients**: ``K`` minibatch gradients ``g_k`` at ``x0`` (each on its own minibatch);
* **pseudo-gradients**: ``K`` vectors ``Delta_k = x0 - x_z``, each from ``z =
  config.local_steps`` steps of plain SGD (FedAvg's inner rule) from ``x0`` on its own
  minibatch sequence, at the kept FedAvg point of the family's study (``STUDY``: the inner lr
  and z that study's FedAvg ran with, read from its ``sweep.json``), else the lr of the
  config's tuned fedavg point (``config.tuned['fedavg']['inner_lr']``) if it has one, else
  ``config.hparams.inner_lr``, else 0.01.

The config's injected noise, if any, is added to every gradient (also inside the local
steps). The draws are not centred: :func:`tailopt.noise_tail_index` differences disjoint
pairs of draws (the mean cancels) and forms its block sums within each coordinate (each
coordinate's scale cancels), so scale differences between coordinates do not read as heavy
tails. It estimates the tail index alpha per parameter group (each leaf of the params tree;
stacked transformer layers form one group; at most ``--max-coords`` coordinates per group,
at fixed random positions) and over all params (the groups' coordinate columns side by
side; the estimator is per coordinate), with two estimators:

* ``stable`` (Mohammadi et al. 2015, blocks within each coordinate): alpha in (0, 2],
  2 = Gaussian-like, smaller = heavier tails. The coordinates' draws are not independent (a
  minibatch moves many together), so it is also run on 16 random orderings of the draws
  (other pairs, other blocks): the reported alpha is their median, with the 10th-90th
  percentile as its spread.
* ``hill`` on the differences standardised per coordinate by their median ``|D|``, pooled
  (Pareto-type tails; reads > 2 for light tails).

It writes ``tail_index.json`` and ``tail_index.png`` (alpha per group, gradients and
pseudo-gradients side by side, one row per family) into ``--out``. The synthetic task with
injected alpha = 1.5 stable noise is included as a check that the measurement recovers a
known alpha. ``--reference`` also writes ``reference.json``: what the estimators read on
known noise (Gaussian, Student-t, Laplace, stable) at the same ``K``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
  )

import jax  # noqa: E402
import numpy as np  # noqa: E402

import tailopt  # noqa: E402
from experiments import tasks  # noqa: E402
from experiments.rundir import atomic_write  # noqa: E402
from experiments import provenance  # noqa: E402

MAX_COORDS = 50_000  # coordinates per group (fixed random positions) kept for the estimate
MIN_COORDS = 64  # groups with fewer coordinates get no estimate of their own
# Group counts (alpha < 1.8, lowest alpha) use groups with >= this many coordinates used.
# Smaller groups are noisier: on the injected alpha = 1.5 check a 64-coordinate bias read
# 1.40-1.83 on single orderings of the draws (1.48-1.57 as the median over orderings).
COUNT_COORDS = 1000
ORDERINGS = 16  # random orderings of the draws, for the spread of the stable estimate

# family -> (config module, variant, config overrides, description)
FAMILIES = {
  "synthetic_mlp": (
    "synthetic",
    "mlp",
    {"noise": ("none", 0.0)},
    "MLP on synthetic data, no injected noise",
  ),
  "synthetic_injected_a1.5": (
    "synthetic",
    "mlp",
    {"noise": ("stable", 1.5)},
    "same, + injected alpha=1.5 stable noise (check)",
  ),
  "fashion_mnist_cnn": ("fashion_mnist", "cnn", {}, "CNN, Fashion-MNIST"),
  "fashion_mnist_vit": ("fashion_mnist", "vit", {}, "ViT, Fashion-MNIST"),
  "gutenberg8_char_lm": ("gutenberg8", "study", {}, "char transformer, Gutenberg-8"),
  "movie_reviews_minilm": (
    "movie_reviews",
    "",
    {"trainable": "all", "max_len": 32},
    "MiniLM-BERT (pretrained), movie reviews",
  ),
  "bible_translation": (
    "bible_translation",
    "study",
    {},
    "encoder-decoder, Bible English to Spanish",
  ),
  "qwen25_text": (
    "qwen25",
    "study",
    {},
    "Qwen2.5-0.5B (pretrained), last of 24 blocks",
  ),
  "smollm2_text": (
    "smollm2",
    "",
    {"trainable": "last_n_layers:4", "seq_len": 64},
    "SmolLM2-135M (pretrained), last 4 blocks",
  ),
}


# family -> the study whose kept FedAvg point (inner lr; local steps z from its config) sets
# the pseudo-gradients: they are then the vectors that study's FedAvg averaged.
STUDY = {
  "fashion_mnist_vit": "experiments/results/real/fashion_mnist",
  "gutenberg8_char_lm": "experiments/results/real/gutenberg8",
  "movie_reviews_minilm": "experiments/results/real/movie_reviews",
  "bible_translation": "experiments/results/translation",
  "qwen25_text": "experiments/results/qwen25",
}


_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def study_fedavg_point(folder: str) -> tuple[float, int, str]:
  """``(inner lr, z, source)`` of a study's kept FedAvg point, read from its sweep.json."""
  path = os.path.join(folder, "sweep.json")  # relative to the repository root
  try:
    with open(os.path.join(_REPO, path)) as f:
      sweep = json.load(f)
    lr = float(sweep["methods"]["fedavg"]["best_point"]["hparams.inner_lr"])
    z = int(sweep["config"]["local_steps"])
  except (OSError, KeyError, TypeError, ValueError) as e:
    raise SystemExit(
      f"{path}: no kept FedAvg point ({type(e).__name__}: {e}); run that study's sweep "
      "with fedavg first, or measure the family without it"
    ) from None
  return lr, z, f"{path}: kept fedavg point"


def _config(family):
  module, variant, over, _ = FAMILIES[family]
  c = importlib.import_module(f"configs.{module}").get_config(variant)
  if "noise" in over:
    c.noise.distribution, c.noise.alpha = over["noise"]
  if "trainable" in over:
    c.model.kwargs.update(trainable=over["trainable"])
  if "max_len" in over:
    c.data.max_len, c.data.limit = over["max_len"], 2000
  if "seq_len" in over:
    c.data.seq_len, c.data.stride, c.data.max_chars_per_work = (
      over["seq_len"],
      64,
      50_000,
    )
  if module == "fashion_mnist":
    c.data.limit, c.data.test_limit = 5000, 100
  if family in STUDY:
    lr, c.local_steps, source = study_fedavg_point(STUDY[family])
    c.tuned["fedavg"] = dict(inner_lr=lr)
    c.tail_index_lr_source = source
  return c


def pseudo_lr(config) -> tuple[float, str]:
  """The local lr of the pseudo-gradients, and where it came from."""
  tuned = config.get("tuned") or {}
  if "fedavg" in tuned and tuned["fedavg"].get("inner_lr") is not None:
    source = config.get("tail_index_lr_source") or "config.tuned['fedavg']['inner_lr']"
    return float(tuned["fedavg"]["inner_lr"]), source
  if config.hparams.get("inner_lr") is not None:
    return float(config.hparams.inner_lr), "config.hparams.inner_lr"
  return 0.01, "default (no fedavg point in the config)"


def draws(
  config,
  num_batches: int,
  batch_size: int,
  seed: int = 0,
  warmup_steps: int = 0,
  max_coords: int = MAX_COORDS,
  log=None,
):
  """``K`` raw draws of the gradient and of the pseudo-gradient, per group.

  Returns ``(groups, info)``: ``groups`` a list of ``(path, grads, pseudo)``, each a
  ``(K, n)`` float32 array of the group's coordinates at fixed random positions (all of
  them if ``n <= max_coords``); ``info`` the number of params, the pseudo-gradients' lr and
  z.
  """
  import optax

  data, model = tasks.build_task(config)
  params = jax.jit(model.init)(jax.random.key(seed))  # one compile, not one per op
  pooled = {k: np.concatenate([c[k] for c in data.clients]) for k in data.clients[0]}
  n = len(next(iter(pooled.values())))
  rng = np.random.default_rng(seed)

  def batch():
    idx = rng.integers(0, n, batch_size)
    return {k: v[idx] for k, v in pooled.items()}

  if warmup_steps:
    opt = optax.adam(1e-3)
    opt_state = opt.init(params)

    @jax.jit
    def step(p, s, b):
      g = jax.grad(model.loss)(p, b)
      u, s = opt.update(g, s, p)
      return optax.apply_updates(p, u), s

    for _ in range(warmup_steps):
      params, opt_state = step(params, opt_state, batch())

  paths = [path for path, _ in jax.tree_util.tree_leaves_with_path(params)]
  sizes = [int(np.size(x)) for x in jax.tree.leaves(params)]
  pick = []  # fixed random positions per group
  for i, size in enumerate(sizes):
    if size <= max_coords:
      pick.append(None)
    else:
      pick.append(np.sort(np.random.default_rng([seed, i]).choice(size, max_coords, False)))

  def columns(tree):
    out = []
    for leaf, idx in zip(jax.tree.leaves(tree), pick):
      x = np.ravel(np.asarray(leaf, np.float32))
      out.append(x if idx is None else x[idx])
    return out

  noise_tx, noise_state = None, None
  if config.noise.distribution != "none":
    noise_tx = tailopt.inject_noise(
      config.noise.distribution,
      config.noise.scale,
      alpha=config.noise.alpha,
      df=config.noise.df,
      seed=seed,
    )
    noise_state = noise_tx.init(params)

  def noisy_grad(p, b, ns):
    g = jax.grad(model.loss)(p, b)
    if noise_tx is not None:
      g, ns = noise_tx.update(g, ns)
    return g, ns

  grad = jax.jit(noisy_grad)
  grads = []
  for _ in range(num_batches):
    g, noise_state = grad(params, batch(), noise_state)
    grads.append(columns(jax.device_get(g)))
  if log:
    log(f"{num_batches} gradients")

  lr, lr_source = pseudo_lr(config)
  z = int(config.local_steps)

  # A Python loop over the jitted gradient (no second compile of the noise sampler).
  sgd = jax.jit(lambda p, g: jax.tree.map(lambda a, u: a - lr * u, p, g))
  diff = jax.jit(lambda a, b: jax.tree.map(lambda x, y: x - y, a, b))

  def local_run(x0, ns):
    p = x0
    for _ in range(z):
      g, ns = grad(p, batch(), ns)
      p = sgd(p, g)
    return diff(x0, p), ns

  pseudo = []
  for _ in range(num_batches):
    delta, noise_state = local_run(params, noise_state)
    pseudo.append(columns(jax.device_get(delta)))
  if log:
    log(f"{num_batches} pseudo-gradients (z={z}, lr={lr:g})")

  groups = [
    (
      jax.tree_util.keystr(path),
      np.stack([g[i] for g in grads]),
      np.stack([d[i] for d in pseudo]),
    )
    for i, path in enumerate(paths)
  ]
  info = {
    "num_params": int(sum(sizes)),
    "pseudo_lr": lr,
    "pseudo_lr_source": lr_source,
    "local_steps": z,
  }
  return groups, info


# One compiled program per shape (the Hill path needs concrete values and runs op by op).
_stable = jax.jit(lambda x: tailopt.noise_tail_index(x, "stable"))


def estimate(x: np.ndarray, orderings: int = ORDERINGS, seed: int = 0) -> dict:
  """``tailopt.noise_tail_index`` (stable and Hill) of ``K`` draws ``x`` of shape (K, n).

  ``stable_alpha_orderings``: the stable estimate on ``orderings`` random orderings of the
  draws (other pairs, other blocks; 10th, 50th, 90th percentile). The draws of different
  coordinates are not independent (a minibatch moves many coordinates together), so
  averaging over coordinates can leave much of the estimator's variance; a wide range says
  so.
  """
  x = np.asarray(x, np.float32)
  pairs = x.shape[0] // 2
  d = x[0 : 2 * pairs : 2] - x[1 : 2 * pairs : 2]
  used = int(np.sum(np.all(d != 0, axis=0)))  # the coordinates the estimator keeps
  out = {
    "coords": int(x.shape[1]),
    "coords_used": used,
    "stable_alpha": None,
    "hill_alpha": None,
  }
  if used < MIN_COORDS:
    return out
  out["stable_alpha"] = float(_stable(x))
  out["hill_alpha"] = float(tailopt.noise_tail_index(x, "hill"))
  if orderings:
    rng = np.random.default_rng(seed)
    a = [float(_stable(x[rng.permutation(len(x))])) for _ in range(orderings)]
    p10, p50, p90 = np.percentile(a, [10, 50, 90])
    out["stable_alpha_orderings"] = {
      "n": orderings,
      "p10": float(p10),
      "median": float(p50),
      "p90": float(p90),
    }
  return out


def headline(e: dict):
  """The alpha reported: the median of the stable estimate over the orderings of the draws
  (the estimate on one ordering, ``stable_alpha``, is one sample of it)."""
  q = e.get("stable_alpha_orderings")
  return q["median"] if q else e["stable_alpha"]


def summarise(columns: list) -> dict:
  """Per-group and all-params estimates of ``[(path, (K, n) array), ...]``."""
  groups = {p: estimate(x) for p, x in columns if x.shape[1] >= MIN_COORDS}
  s = {
    "overall": estimate(np.concatenate([x for _, x in columns], axis=1)),
    "groups": groups,
  }
  return counts(s)


def counts(s: dict) -> dict:
  """Adds the group counts of a summary: over the groups with >= COUNT_COORDS coordinates."""
  alphas = [
    headline(g)
    for g in s["groups"].values()
    if g["stable_alpha"] is not None and g["coords_used"] >= COUNT_COORDS
  ]
  s.update(
    {
      "count_min_coords": COUNT_COORDS,
      "groups_counted": len(alphas),
      "groups_below_1.8": int(sum(a < 1.8 for a in alphas)),
      "lowest_group_alpha": min(alphas) if alphas else None,
    }
  )
  s.pop("groups_estimated", None)
  return s


def reference(num_draws: int, coords: int = 3000, seed: int = 0) -> dict:
  """What the estimators read on known noise: ``num_draws`` draws of ``coords`` coordinates
  whose scales span four decades (uncentred: a random mean per coordinate)."""
  rng = np.random.default_rng(seed)
  scales = 10.0 ** rng.uniform(-3, 1, coords)
  key = jax.random.key(seed)
  kinds = {
    "gaussian (alpha 2)": rng.normal(size=(num_draws, coords)),
    "student_t df=5 (finite variance)": rng.standard_t(5, size=(num_draws, coords)),
    "student_t df=3 (finite variance)": rng.standard_t(3, size=(num_draws, coords)),
    "laplace (finite variance)": rng.laplace(size=(num_draws, coords)),
    "stable alpha=1.8": np.asarray(
      tailopt.noise.sample_noise(key, "stable", (num_draws, coords), alpha=1.8)
    ),
    "stable alpha=1.5": np.asarray(
      tailopt.noise.sample_noise(key, "stable", (num_draws, coords), alpha=1.5)
    ),
    "stable alpha=1.1": np.asarray(
      tailopt.noise.sample_noise(key, "stable", (num_draws, coords), alpha=1.1)
    ),
  }
  out = {}
  for name, x in kinds.items():
    x = (x + rng.normal(size=coords)) * scales
    e = estimate(x)
    out[name] = {k: e[k] for k in ("stable_alpha", "stable_alpha_orderings", "hill_alpha")}
    if name in KNOWN_ALPHA:
      out[name]["known_alpha"] = KNOWN_ALPHA[name]
  return {
    "num_draws": num_draws,
    "coords": coords,
    "scales": "10**U(-3, 1)",
    "tolerance": TOLERANCE,
    "readings": out,
    "code": provenance.code_version(),
  }


# The readings of reference() whose alpha is known; each must be read within TOLERANCE
# (``experiments.report --check`` holds a tail-index folder to it).
KNOWN_ALPHA = {
  "gaussian (alpha 2)": 2.0,
  "stable alpha=1.8": 1.8,
  "stable alpha=1.5": 1.5,
  "stable alpha=1.1": 1.1,
}
TOLERANCE = 0.1


PRETRAINED = ("movie_reviews_minilm", "qwen25_text", "smollm2_text")


def measure(family: str, num_batches: int, batch_size: int, max_coords: int = MAX_COORDS) -> dict:
  import time

  t0 = time.time()

  def log(msg):
    print(f"  [{family}] {msg} ({time.time() - t0:.0f}s)", flush=True)

  warmup = 0 if family in PRETRAINED else 100
  groups, info = draws(
    _config(family),
    num_batches,
    batch_size,
    warmup_steps=warmup,
    max_coords=max_coords,
    log=log,
  )
  result = {
    "description": FAMILIES[family][3],
    "num_params": info["num_params"],
    "warmup_adam_steps": warmup,
    "num_batches": num_batches,
    "batch_size": batch_size,
    "max_coords_per_group": max_coords,
    "estimator": "tailopt.noise_tail_index (stable; hill)",
    "pseudo_gradient": {
      "definition": "x0 - x_z, z local steps of plain SGD from x0, own minibatches",
      "local_steps": info["local_steps"],
      "lr": info["pseudo_lr"],
      "lr_source": info["pseudo_lr_source"],
    },
    "gradients": summarise([(p, g) for p, g, _ in groups]),
    "pseudo_gradients": summarise([(p, d) for p, _, d in groups]),
  }
  log("estimated")
  return result


def plot(results: dict, path: str):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fams = list(results)
  fig, axes = plt.subplots(len(fams), 2, figsize=(15, 2.6 * len(fams)), squeeze=False)
  for row, fam in zip(axes, fams):
    r = results[fam]
    pg = r["pseudo_gradient"]
    for ax, key, what in (
      (row[0], "gradients", "gradients"),
      (
        row[1],
        "pseudo_gradients",
        f"pseudo-gradients (z={pg['local_steps']}, lr={pg['lr']:g})",
      ),
    ):
      g = r[key]["groups"]
      names = list(g)
      vals = [np.nan if g[n]["stable_alpha"] is None else headline(g[n]) for n in names]
      bars = ax.bar(range(len(names)), vals, color=["C3" if v < 1.8 else "C0" for v in vals])
      for bar, n in zip(bars, names):
        if g[n]["coords_used"] < COUNT_COORDS:  # noisy: drawn pale, not counted
          bar.set_alpha(0.3)
      ax.axhline(2.0, color="k", lw=0.8, ls="--")
      ax.set_ylim(0, 2.1)
      ax.set_ylabel("alpha")
      ov = r[key]["overall"]
      o = "n/a" if ov["stable_alpha"] is None else f"{headline(ov):.2f}"
      if ov.get("stable_alpha_orderings"):
        q = ov["stable_alpha_orderings"]
        o += f" (p10-p90 over orderings {q['p10']:.2f}-{q['p90']:.2f})"
      ax.set_title(f"{fam}: {what}; all params alpha={o}", fontsize=8)
      short = [n.replace("['", "").replace("']", "/").rstrip("/")[-28:] for n in names]
      ax.set_xticks(range(len(names)))
      ax.set_xticklabels(short, rotation=60, ha="right", fontsize=6)
  fig.suptitle(
    "Tail index of stochastic-gradient noise per group, tailopt.noise_tail_index (median over "
    f"{ORDERINGS} orderings of the draws) "
    f"(2 = Gaussian; red: alpha < 1.8; pale: < {COUNT_COORDS} coordinates, not counted)",
    fontsize=10,
  )
  fig.tight_layout(rect=(0, 0, 1, 0.985))
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _line(fam: str, r: dict) -> str:
  def f(e):
    if e["stable_alpha"] is None:
      return "n/a"
    q = e.get("stable_alpha_orderings") or {}
    spread = f" [{q['p10']:.2f}-{q['p90']:.2f}, in order {e['stable_alpha']:.2f}]" if q else ""
    return f"{headline(e):.3f}{spread} hill={e['hill_alpha']:.3f}"

  g, d = r["gradients"]["overall"], r["pseudo_gradients"]["overall"]
  return f"{fam:<26} params={r['num_params']:>11,}  grad alpha={f(g)}  pseudo alpha={f(d)}"


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", default="experiments/results/tail_index")
  p.add_argument("--families", default=",".join(FAMILIES))
  p.add_argument("--batches", type=int, default=64, help="K, the draws of each vector")
  p.add_argument("--batch-size", type=int, default=16)
  p.add_argument("--max-coords", type=int, default=MAX_COORDS, help="coordinates per group")
  p.add_argument(
    "--reference",
    action="store_true",
    help="also write reference.json: the readings on known noise at the same K",
  )
  p.add_argument(
    "--merge",
    action="store_true",
    help="keep the other families' entries of an existing tail_index.json",
  )
  args = p.parse_args(argv)
  from absl import logging

  logging.set_verbosity(logging.WARNING)
  fams = [f for f in args.families.split(",") if f]
  for fam in fams:
    if fam not in FAMILIES:
      raise SystemExit(f"unknown family {fam!r}; known: {', '.join(FAMILIES)}")
  os.makedirs(args.out, exist_ok=True)
  out_json = os.path.join(args.out, "tail_index.json")
  results = {}
  if args.merge and os.path.exists(out_json):
    with open(out_json) as f:
      results = json.load(f)
  stale = [f for f, r in results.items() if "gradients" not in r]
  for f in stale:  # the old pooled measurement: not comparable, not kept
    print(f"{f}: dropping its entry of the old pooled measurement", flush=True)
    del results[f]
  for r in results.values():  # recount merged entries with this version's rule
    for key in ("gradients", "pseudo_gradients"):
      counts(r[key])

  def save():
    ordered = {f: results[f] for f in FAMILIES if f in results}  # fixed order
    atomic_write(out_json, json.dumps(ordered, indent=2))
    return ordered

  if args.reference:
    ref = reference(args.batches)
    atomic_write(os.path.join(args.out, "reference.json"), json.dumps(ref, indent=2))
    for name, e in ref["readings"].items():
      print(f"reference {name:<34} alpha={headline(e):.3f} hill={e['hill_alpha']:.3f}")
  for fam in fams:
    print(f"{fam}: measuring ({FAMILIES[fam][3]})", flush=True)
    results[fam] = measure(fam, args.batches, args.batch_size, args.max_coords)
    results[fam]["code"] = provenance.code_version()
    print(_line(fam, results[fam]), flush=True)
    save()  # after every family: a long run keeps what it measured
  ordered = save()
  if ordered:
    plot(ordered, os.path.join(args.out, "tail_index.png"))
  return ordered


if __name__ == "__main__":
  main()

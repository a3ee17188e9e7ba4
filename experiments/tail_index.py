"""How heavy-tailed is each model's stochastic-gradient noise? Per parameter group.

    python -m experiments.tail_index --out experiments/results/tail_index [--families ...]

For each family it builds the model and data from the family's config (small variants of
the real models). Models trained from scratch are first warmed up with 100 Adam steps
(lr 1e-3) on the pooled training data -- at initialisation the noise is degenerate (a
zero-initialised head passes no gradient to the layers below); pretrained models are
measured at their pretrained weights. It then draws ``K`` minibatch gradients
``g_k``, takes the noise ``g_k - mean_k g_k`` of every coordinate, and estimates the tail
index alpha of that noise per parameter group (each leaf of the params tree; stacked
transformer layers form one group) with two estimators:

* ``stable_tail_index`` (Mohammadi et al. 2015, as used by Simsekli et al. 2019): alpha in
  (0, 2], 2 = Gaussian-like, smaller = heavier tails.
* ``hill_estimator`` on the top sqrt(n) order statistics (Pareto-type tails).

It writes ``tail_index.json`` and ``tail_index.png`` (alpha per group, one panel per
family) into ``--out``. The synthetic task with injected alpha-stable noise is included
as a check that the estimator recovers a known alpha.
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
  "smollm2_text": (
    "smollm2",
    "",
    {"trainable": "last_n_layers:4", "seq_len": 64},
    "SmolLM2-135M (pretrained), last 4 blocks",
  ),
}


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
    c.data.seq_len, c.data.stride, c.data.max_chars_per_work = over["seq_len"], 64, 50_000
  if module == "fashion_mnist":
    c.data.limit, c.data.test_limit = 5000, 100
  return c


def noise_samples(config, num_batches: int, batch_size: int, seed: int = 0, warmup_steps: int = 0):
  """Per-leaf gradient noise ``g_k - mean_k g_k`` as a list of (path, (K, size)) arrays."""
  import optax

  data, model = tasks.build_task(config)
  params = model.init(jax.random.key(seed))
  pooled = {k: np.concatenate([c[k] for c in data.clients]) for k in data.clients[0]}
  n = len(next(iter(pooled.values())))
  rng = np.random.default_rng(seed)
  if warmup_steps:
    opt = optax.adam(1e-3)
    opt_state = opt.init(params)

    @jax.jit
    def step(p, s, b):
      g = jax.grad(model.loss)(p, b)
      u, s = opt.update(g, s, p)
      return optax.apply_updates(p, u), s

    for _ in range(warmup_steps):
      idx = rng.integers(0, n, batch_size)
      params, opt_state = step(params, opt_state, {k: v[idx] for k, v in pooled.items()})
  grad = jax.jit(jax.grad(model.loss))
  noise_tx = None
  if config.noise.distribution != "none":
    noise_tx = tailopt.inject_noise(
      config.noise.distribution,
      config.noise.scale,
      alpha=config.noise.alpha,
      df=config.noise.df,
      seed=seed,
    )
    noise_state = noise_tx.init(params)
  grads = []
  for _ in range(num_batches):
    idx = rng.integers(0, n, batch_size)
    g = grad(params, {k: v[idx] for k, v in pooled.items()})
    if noise_tx is not None:
      g, noise_state = noise_tx.update(g, noise_state)
    grads.append(jax.device_get(g))
  leaves = []
  for path, _ in jax.tree_util.tree_leaves_with_path(grads[0]):
    stack = np.stack([np.ravel(np.asarray(_get(g, path), np.float32)) for g in grads])
    leaves.append((jax.tree_util.keystr(path), stack - stack.mean(0, keepdims=True)))
  return leaves, int(sum(x.size for x in jax.tree.leaves(params)))


def _get(tree, path):
  for p in path:
    tree = tree[p.key] if hasattr(p, "key") else tree[p.idx]
  return tree


def estimate(noise: np.ndarray, max_samples: int = 200_000, seed: int = 0) -> dict:
  x = noise.ravel()
  x = x[x != 0]
  if len(x) < 100:
    return {"n": int(len(x)), "stable_alpha": None, "hill_alpha": None}
  if len(x) > max_samples:
    x = np.random.default_rng(seed).choice(x, max_samples, replace=False)
  x = np.random.default_rng(seed + 1).permutation(x)
  return {
    "n": int(len(x)),
    "stable_alpha": float(tailopt.stable_tail_index(x)),
    "hill_alpha": float(tailopt.hill_estimator(x)),
  }


PRETRAINED = ("movie_reviews_minilm", "smollm2_text")


def measure(family: str, num_batches: int, batch_size: int) -> dict:
  warmup = 0 if family in PRETRAINED else 100
  leaves, n_params = noise_samples(_config(family), num_batches, batch_size, warmup_steps=warmup)
  groups = {}
  for path, noise in leaves:
    if noise.shape[1] < 64:
      continue  # tiny leaves (a few biases): too few coordinates for an estimate
    groups[path] = estimate(noise)
  all_noise = np.concatenate([n.ravel() for _, n in leaves])
  return {
    "description": FAMILIES[family][3],
    "num_params": n_params,
    "warmup_adam_steps": warmup,
    "num_batches": num_batches,
    "batch_size": batch_size,
    "overall": estimate(all_noise),
    "groups": groups,
  }


def plot(results: dict, path: str):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fams = list(results)
  fig, axes = plt.subplots(len(fams), 1, figsize=(10, 2.3 * len(fams)), squeeze=False)
  for ax, fam in zip(axes[:, 0], fams):
    g = results[fam]["groups"]
    names = list(g)
    vals = [g[n]["stable_alpha"] or np.nan for n in names]
    ax.bar(range(len(names)), vals, color=["C3" if v < 1.8 else "C0" for v in vals])
    ax.axhline(2.0, color="k", lw=0.8, ls="--")
    ax.set_ylim(0, 2.1)
    ax.set_ylabel("alpha")
    o = results[fam]["overall"]["stable_alpha"]
    ax.set_title(f"{fam}: {results[fam]['description']} (all params: alpha={o:.2f})", fontsize=9)
    short = [n.replace("['", "").replace("']", "/").rstrip("/")[-28:] for n in names]
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(short, rotation=60, ha="right", fontsize=6)
  fig.suptitle(
    "Tail index of stochastic-gradient noise per parameter group (2 = Gaussian; red: alpha < 1.8)",
    fontsize=10,
  )
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", default="experiments/results/tail_index")
  p.add_argument("--families", default=",".join(FAMILIES))
  p.add_argument("--batches", type=int, default=64)
  p.add_argument("--batch-size", type=int, default=16)
  p.add_argument(
    "--merge",
    action="store_true",
    help="keep the other families' entries of an existing tail_index.json",
  )
  args = p.parse_args(argv)
  from absl import logging

  logging.set_verbosity(logging.WARNING)
  os.makedirs(args.out, exist_ok=True)
  out_json = os.path.join(args.out, "tail_index.json")
  results = json.load(open(out_json)) if args.merge and os.path.exists(out_json) else {}
  for fam in [f for f in args.families.split(",") if f]:
    if fam not in FAMILIES:
      raise SystemExit(f"unknown family {fam!r}; known: {', '.join(FAMILIES)}")
    results[fam] = measure(fam, args.batches, args.batch_size)
    o = results[fam]["overall"]
    print(
      f"{fam:<26} params={results[fam]['num_params']:>11,}  alpha(stable)="
      f"{o['stable_alpha']:.3f}  alpha(hill)={o['hill_alpha']:.3f}",
      flush=True,
    )
  results = {f: results[f] for f in FAMILIES if f in results}  # fixed order
  with open(out_json, "w") as f:
    json.dump(results, f, indent=2)
  plot(results, os.path.join(args.out, "tail_index.png"))


if __name__ == "__main__":
  main()

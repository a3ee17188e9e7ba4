"""The training loop: rounds, evaluation, logging, checkpoints, resume.

Every function here imports and tests on its own; :func:`train` strings them together::

    summary = train(config, workdir)

A run writes into ``workdir``: ``metrics.jsonl`` (one line per round, eval lines at the
eval cadence), TensorBoard event files, ``checkpoints/`` (orbax) and ``summary.json``.
Rerunning the same command resumes from the newest checkpoint and ends with exactly the
parameters of an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_dict

import tailopt
from experiments import checkpoint as ckpt_lib
from experiments import tasks as tasks_lib
from experiments import validate as validate_lib
from experiments.metric_writer import MetricWriter
from tailopt.data.batching import ClientBatches, eval_batches


def make_noise(config):
  n = config.noise
  if n.distribution == "none":
    return None
  return tailopt.inject_noise(n.distribution, n.scale, alpha=n.alpha, df=n.df,
                              seed=config.seed + 17)


def make_round(config, model, method, batches: ClientBatches) -> tailopt.Round:
  mesh = tailopt.client_mesh(validate_lib.resolve_devices(config))
  # Sampled clients do not own a slot across rounds, so their inner state cannot be kept.
  reset = config.reset_inner_state or batches.samples_clients
  return tailopt.build_round(
      model.loss, method, local_steps=config.local_steps, num_clients=config.clients,
      mesh=mesh, reset_inner_state=reset, participation=config.participation or None,
      noise=make_noise(config))


def evaluate(eval_fn, params, examples: dict, batch_size: int) -> dict:
  """Count-weighted means of ``eval_fn`` over a held-out set."""
  sums, total = {}, 0.0
  for batch in eval_batches(examples, batch_size):
    m = jax.device_get(eval_fn(params, batch))
    c = float(m.pop("count"))
    total += c
    for k, v in m.items():
      sums[k] = sums.get(k, 0.0) + float(v) * c
  return {k: v / max(total, 1.0) for k, v in sums.items()}


def _finite_tree(tree) -> bool:
  return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree))


def progress_bar(config, total, initial, label, unit="round"):
  """A tqdm bar (None when ``config.progress`` is off or tqdm is missing)."""
  if not config.progress:
    return None
  try:
    from tqdm.auto import tqdm
  except ImportError:  # pragma: no cover
    return None
  return tqdm(total=total, initial=initial, desc=label, unit=unit, dynamic_ncols=True,
              leave=False)


def describe_noise(config) -> str:
  n = config.noise
  if n.distribution == "none":
    return "none"
  return f"{n.distribution}(alpha={n.alpha}, df={n.df}, scale={n.scale})"


def summary_box(title: str, rows, width: int = 64) -> str:
  """``rows`` of (label, value) under a title, aligned, between rules."""
  w = max(len(r[0]) for r in rows)
  return "\n".join(["", "=" * width, f" {title}", "=" * width]
                   + [f" {k:<{w}}  {v}" for k, v in rows] + ["=" * width])


def format_summary(summary: dict) -> str:
  """The one-screen summary printed at the end of a run."""
  rows = [("workdir", summary["workdir"]),
          ("rounds", f"{summary['rounds_done']} / {summary['rounds']}"
                     f" (resumed from {summary['resumed_from']})" if summary["resumed_from"]
           else f"{summary['rounds_done']} / {summary['rounds']}"),
          ("clients x local steps", f"{summary['clients']} x {summary['local_steps']}"),
          ("noise", summary["noise"]),
          ("hyperparameters", ", ".join(f"{k}={v}" for k, v in summary["hparams"].items())
           or "method defaults"),
          ("wall time", f"{summary['wall_s']:.1f} s ({summary['rounds_per_s']:.1f} rounds/s)")]
  for k, v in summary["final"].items():
    rows.append((f"final {k}", f"{v:.6g}"))
  if summary.get("best") is not None:
    rows.append((f"best {summary['report_metric']}",
                 f"{summary['best']:.6g} at round {summary['best_round']}"))
  return summary_box(f"tailopt run: {summary['method']} on {summary['task']}"
                     f"{' (DIVERGED)' if summary['diverged'] else ''}", rows)


def _fast_frozen_constants():
  """Frozen pretrained layers are closed-over constants; this JAX option keeps them out
  of the compiled program's literal pool (2-5x faster compiles for partly frozen LMs)."""
  try:
    jax.config.update("jax_use_simplified_jaxpr_constants", True)
  except (AttributeError, KeyError):  # an older/newer JAX without the option
    pass


def train(config: config_dict.ConfigDict, workdir: str, *,
          on_round_end: Optional[Callable[[int, dict], None]] = None,
          quiet: bool = False) -> dict:
  """Runs (or resumes) one experiment; returns the summary dict (also in summary.json)."""
  validate_lib.validate(config, tasks_lib.TASKS)
  _fast_frozen_constants()
  os.makedirs(workdir, exist_ok=True)
  data, model = tasks_lib.build_task(config)
  method = tailopt.get_method(config.method, **validate_lib.method_hparams(config))
  batches = ClientBatches(data, local_steps=config.local_steps, batch_size=config.batch_size,
                          seed=config.seed, clients_per_round=config.clients)
  rnd = make_round(config, model, method, batches)
  params = model.init(jax.random.key(config.seed))
  state = rnd.init(params, seed=config.seed)
  del params

  fingerprint = ckpt_lib.config_fingerprint(config.to_dict())
  ckpt = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                               config.checkpoint_every, config.keep_checkpoints)
  restored = ckpt.restore(state, fingerprint)
  start = 0
  if restored is not None:
    state, record = restored
    start = int(record["round"])
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(config.to_dict(), f, indent=2, default=str)
  writer = MetricWriter(workdir)
  writer.truncate_after(start)
  eval_fn = jax.jit(model.evaluate)
  best, best_round = None, None
  sign = 1.0 if config.report_mode == "min" else -1.0
  history = [json.loads(l) for l in open(writer.jsonl_path)] if start else []
  for rec in history:
    v = rec.get(config.report_metric)
    if v is not None and math.isfinite(v) and (best is None or sign * v < sign * best):
      best, best_round = v, rec["round"]

  def run_eval(r):
    nonlocal best, best_round
    m = {f"eval/{k}": v for k, v in
         evaluate(eval_fn, state.params, data.test, config.eval_batch_size).items()}
    # Corpus-level metrics a task attaches to its model (e.g. BLEU of decoded test verses).
    if model.meta.get("corpus_eval") is not None:
      m.update({f"eval/{k}": float(v) for k, v in model.meta["corpus_eval"](state.params).items()})
    v = m.get(config.report_metric)
    if v is not None and math.isfinite(v) and (best is None or sign * v < sign * best):
      best, best_round = v, r
    return m

  bar = None if quiet else progress_bar(config, config.rounds, start, config.method)
  diverged = False
  t0 = time.perf_counter()
  last = {}
  r = start
  try:
    for r in range(start + 1, config.rounds + 1):
      batch = batches(r - 1)
      weights = batches.weights(r - 1) if config.weighted else None
      state, metrics = rnd(state, batch, weights)
      metrics = {f"train/{k}": float(v) for k, v in jax.device_get(metrics).items()}
      if config.eval_every and (r % config.eval_every == 0 or r == config.rounds):
        metrics.update(run_eval(r))
      writer.write(r, metrics)
      last.update(metrics)
      if bar is not None:
        bar.update(1)
        post = {"loss": f"{metrics['train/loss']:.4g}"}
        if config.report_metric in metrics:
          post[config.report_metric.split("/")[-1]] = f"{metrics[config.report_metric]:.4g}"
        bar.set_postfix(post)
      if not math.isfinite(metrics["train/loss"]) or not math.isfinite(
          metrics["train/delta_norm"]):
        diverged = True
        if config.stop_on_nan:
          break
      ckpt.save(r, state, {"round": r, "data_position": r, "fingerprint": fingerprint})
      if on_round_end is not None:
        on_round_end(r, metrics)
  finally:
    if bar is not None:
      bar.close()
    writer.close()
  wall = time.perf_counter() - t0
  if not diverged:
    diverged = not _finite_tree(state.params)
  ckpt.save(r, state, {"round": r, "data_position": r, "fingerprint": fingerprint},
            force=True)
  ckpt.close()
  final = {k: v for k, v in last.items() if k.startswith("eval/") or k == "train/loss"}
  if diverged:
    final[config.report_metric] = math.inf * sign
  summary = dict(
      workdir=os.path.abspath(workdir), task=config.task, method=config.method,
      hparams=validate_lib.method_hparams(config), seed=config.seed,
      noise=describe_noise(config),
      clients=config.clients, local_steps=config.local_steps, rounds=config.rounds,
      rounds_done=r, resumed_from=start, finished=(r == config.rounds) or diverged,
      diverged=diverged, wall_s=wall, rounds_per_s=(r - start) / max(wall, 1e-9),
      report_metric=config.report_metric, report_mode=config.report_mode,
      best=best if not diverged else None, best_round=best_round if not diverged else None,
      final=final)
  with open(os.path.join(workdir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2, default=float)
  if not quiet:
    print(format_summary(summary))
  return summary


def final_params(config, workdir: str):
  """The newest checkpointed global params of a run in ``workdir`` (for analysis/tests)."""
  data, model = tasks_lib.build_task(config)
  method = tailopt.get_method(config.method, **validate_lib.method_hparams(config))
  batches = ClientBatches(data, local_steps=config.local_steps, batch_size=config.batch_size,
                          seed=config.seed, clients_per_round=config.clients)
  rnd = make_round(config, model, method, batches)
  template = rnd.init(model.init(jax.random.key(config.seed)), seed=config.seed)
  ckpt = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"), 0)
  out = ckpt.restore(template)
  ckpt.close()
  if out is None:
    raise FileNotFoundError(f"no checkpoint under {workdir}/checkpoints")
  return jax.device_get(out[0].params), out[1]

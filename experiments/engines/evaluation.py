"""Held-out evaluation of the loop, and the check that the report metric is logged."""

from __future__ import annotations

import math

import jax

from experiments.errors import ConfigError
from tailopt.data.batching import eval_batches


def evaluate(eval_fn, params, examples: dict, batch_size: int) -> dict:
  """Count-weighted means of ``eval_fn`` over a held-out set. ``perplexity`` has one
  definition, ``exp`` of the held-out mean token cross-entropy (``loss``), not a mean of the
  batches' perplexities (which Jensen's inequality puts above it)."""
  sums, total = {}, 0.0
  for batch in eval_batches(examples, batch_size):
    m = jax.device_get(eval_fn(params, batch))
    c = float(m.pop("count"))
    total += c
    for k, v in m.items():
      sums[k] = sums.get(k, 0.0) + float(v) * c
  out = {k: v / max(total, 1.0) for k, v in sums.items()}
  if "perplexity" in out and "loss" in out:
    out["perplexity"] = math.exp(out["loss"])
  return out


def evaluate_all(config, model, eval_fn, params, data) -> dict:
  """The ``eval/`` metrics of ``params``: the held-out means, and the corpus-level metrics a
  task attaches to its model (e.g. BLEU of decoded verses)."""
  ev = evaluate(eval_fn, params, data.test, config.eval_batch_size)
  if model.meta.get("corpus_eval") is not None:
    ev.update({k: float(v) for k, v in model.meta["corpus_eval"](params).items()})
  return {f"eval/{k}": v for k, v in ev.items()}


def check_report_metric(config, model, engine, state, data, tracker) -> None:
  """``config.report_metric`` must be something the run logs (checked before training for
  eval metrics, after the first chunk for train metrics)."""
  m = config.report_metric
  if m.startswith("eval/"):
    batch = next(eval_batches(data.test, config.eval_batch_size))
    keys = set(jax.eval_shape(model.evaluate, engine.params(state), batch)) - {"count"}
    keys |= set(model.meta.get("corpus_eval_keys", ()))  # e.g. BLEU
    if m[len("eval/") :] not in keys:
      raise ConfigError(
        f"config.report_metric={m!r} is never logged; this task's eval "
        f"metrics are {sorted('eval/' + k for k in keys)}."
      )
  elif tracker.seen and m not in tracker.seen:
    raise ConfigError(
      f"config.report_metric={m!r} is never logged; the run logs "
      f"{sorted(k for k in tracker.seen if k.startswith('train/'))}."
    )

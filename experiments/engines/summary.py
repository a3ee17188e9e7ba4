"""A run's summary: the dict written to ``summary.json``, the one-screen box printed at the
end, and the stored summary that a rerun of a finished run prints again."""

from __future__ import annotations

import json
import math
import os
from typing import Optional

from experiments.engines import build
from experiments.engines.outputs import code_versions


# The parameters each noise law reads (tailopt.noise.sample_noise); the summary shows
# only these, so an alpha-stable run never prints a df it does not use.
NOISE_PARAMS = {
  "gaussian": ("scale",),
  "student_t": ("df", "scale"),
  "stable": ("alpha", "scale"),
  "pareto": ("alpha", "scale"),
  "cauchy": ("scale",),
}


def describe_noise(config) -> str:
  n = config.noise
  if n.distribution == "none":
    return "none"
  keys = NOISE_PARAMS.get(n.distribution, ("alpha", "df", "scale"))
  return f"{n.distribution}({', '.join(f'{k}={n[k]}' for k in keys)})"


def summary_box(title: str, rows, width: int = 64) -> str:
  """``rows`` of (label, value) under a title, aligned, between rules."""
  w = max(len(r[0]) for r in rows)
  return "\n".join(
    ["", "=" * width, f" {title}", "=" * width]
    + [f" {k:<{w}}  {v}" for k, v in rows]
    + ["=" * width]
  )


def horizon(config) -> dict:
  """The fields that set a run's length (a finished run is finished for this horizon)."""
  return {k: config.get(k) for k in ("rounds", "server_steps", "time_budget") if k in config}


def stored_summary(workdir, fingerprint, horizon_) -> Optional[dict]:
  """The summary of a finished run of this very config in ``workdir``, if there is one."""
  path = os.path.join(workdir, "summary.json")
  if not os.path.exists(path):
    return None
  try:
    s = json.load(open(path))
  except (OSError, json.JSONDecodeError):
    return None
  if s.get("finished") and s.get("fingerprint") == fingerprint and s.get("horizon") == horizon_:
    return s
  return None


def final_metrics(config, tracker) -> dict:
  """The last eval metrics and training loss (the report metric is inf-bad if diverged)."""
  final = {k: v for k, v in tracker.last.items() if k.startswith("eval/") or k == "train/loss"}
  if tracker.diverged is not None:
    final[config.report_metric] = math.inf * tracker.sign
  return final


def run_summary(config, engine, tracker, state, *, workdir, start, t, wall, final, fingerprint):
  """The summary dict of a run that stopped at ``t`` (``summary.json``)."""
  diverged = tracker.diverged is not None
  total = engine.total
  out = dict(
    workdir=os.path.abspath(workdir),
    mode=config.get("mode", "sync"),
    task=config.task,
    method=config.method,
    label=engine.label,
    title=engine.title,
    hparams=build.method_hparams(config),
    seed=config.seed,
    noise=describe_noise(config),
    unit=engine.unit,
    total=total,
    done=t,
    resumed_from=start,
    finished=(t == total) or diverged,
    diverged=diverged,
    diverged_reason=tracker.diverged,
    wall_s=wall,
    per_s=(t - start) / max(wall, 1e-9),
    report_metric=config.report_metric,
    report_mode=config.report_mode,
    best=None if diverged else tracker.best,
    best_at=None if diverged else tracker.best_at,
    best_time=None if diverged else tracker.best_time,
    target=tracker.target,
    time_to_target=None if diverged else tracker.time_to_target,
    final=final,
    fingerprint=fingerprint,
    horizon=horizon(config),
    code=code_versions(workdir),
  )
  out.update(engine.summary(state, t, out))
  out["engine_rows"] = engine.summary_rows(out)
  return out


def _result_rows(s: dict) -> list:
  """The box's lines of final, best and time-to-target values."""
  unit = s["unit"]
  rows = [(f"final {k}", f"{v:.6g}") for k, v in s["final"].items()]
  if s.get("best") is not None:
    when = f"at {unit} {s['best_at']}"
    if s.get("best_time") is not None:
      when += f" (t = {s['best_time']:.1f} s)"
    rows.append((f"best {s['report_metric']}", f"{s['best']:.6g} {when}"))
  if s.get("target") is not None:
    ttt = s.get("time_to_target")
    rows.append(
      (
        f"time to {s['report_metric']} {'<=' if s['report_mode'] == 'min' else '>='}"
        f" {s['target']:g}",
        "not reached" if ttt is None else f"{ttt:.1f} s",
      )
    )
  if s["diverged"]:
    rows.append(("diverged", s["diverged_reason"]))
  return rows


def format_summary(summary: dict) -> str:
  """The one-screen summary printed at the end of a run."""
  s = summary
  unit = s["unit"]
  resumed = f" (resumed from {s['resumed_from']})" if s["resumed_from"] else ""
  rows = [("workdir", s["workdir"]), (f"{unit}s", f"{s['done']} / {s['total']}{resumed}")]
  rows += s.get("engine_rows", [])
  rows += [
    ("noise", s["noise"]),
    (
      "hyperparameters",
      ", ".join(f"{k}={v}" for k, v in s["hparams"].items()) or "method defaults",
    ),
    ("wall time", f"{s['wall_s']:.1f} s ({s['per_s']:.1f} {unit}s/s)"),
  ]
  rows += _result_rows(s)
  rows += _output_rows(s)
  return summary_box(f"{s['title']}{' (DIVERGED)' if s['diverged'] else ''}", rows, width=68)


def _output_rows(s: dict) -> list:
  """Where the run's outputs are and what to run next."""
  wd = s["workdir"]
  rows = [("outputs", f"{wd}/metrics.jsonl, summary.json, events.out.tfevents.*")]
  if not s["finished"]:
    rows.append(("resume", "rerun the same command"))
  rows += [
    ("next: curves", f"tensorboard --logdir {wd}"),
    ("next: a study", "python -m experiments.sweep --config <config> --workdir DIR"),
    ("", "then python -m experiments.report DIR (tables, CIs, plots)"),
  ]
  return rows

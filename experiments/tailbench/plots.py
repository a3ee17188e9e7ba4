"""tailbench's plots: the final report metric against the tail index alpha per method (one
panel per task), and each task's mean curves with their 95% bands (one panel per noise)."""

from __future__ import annotations

import math

from experiments import tables


def _colors(labels):
  plt = tables.pyplot()
  cmap = plt.get_cmap("tab20")
  return {label: cmap(i % 20) for i, label in enumerate(labels)}


def _labels(board) -> list:
  out = []
  for s in board["studies"].values():
    out += [k for k in s["methods"] if k not in out]
  return out


def is_stable(study) -> bool:
  """Whether a study's injected noise is alpha-stable (it has a place on the alpha axis)."""
  return study["sweep"]["config"]["noise"]["distribution"] == "stable"


def quality_vs_alpha(board: dict, path: str) -> bool:
  """Final metric (mean ± 95% CI over report seeds) against alpha, per method and task
  (the stable noise laws only; tasks without one get no panel). Returns whether a plot was
  written (False: no task has a stable noise law)."""
  plt = tables.pyplot()
  tasks = [
    t
    for t in board["layout"]
    if any(k[0] == t and is_stable(s) for k, s in board["studies"].items())
  ]
  if not tasks:
    return False
  colors = _colors(_labels(board))
  fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4.2), squeeze=False)
  for ax, task in zip(axes[0], tasks):
    per = {}
    metric = ""
    for (t, _), s in board["studies"].items():
      if t != task or not is_stable(s):
        continue
      alpha = s["sweep"]["config"]["noise"]["alpha"]
      metric = s["metric"]
      for label, m in s["methods"].items():
        per.setdefault(label, []).append((alpha, m["final"]["mean"], m["final"]["ci95"]))
    for label, pts in per.items():
      pts = sorted(p for p in pts if p[1] == p[1])
      if pts:
        xs, ys, hs = zip(*pts)
        hs = [0.0 if math.isnan(h) else h for h in hs]
        ax.errorbar(xs, ys, yerr=hs, label=label, color=colors[label], marker="o", capsize=2)
    ax.set_title(task)
    ax.set_xlabel("stable noise alpha")
    ax.set_ylabel(f"final {metric}")
    if metric.endswith("loss"):
      ax.set_yscale("log")
  axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return True


def curves(board: dict, task: str, path: str) -> None:
  """One panel per noise law of ``task``: every method's mean curve with its 95% band."""
  plt = tables.pyplot()
  noises = [n for (t, n) in board["studies"] if t == task]
  colors = _colors(_labels(board))
  fig, axes = plt.subplots(1, max(len(noises), 1), figsize=(5 * len(noises), 4), squeeze=False)
  for ax, noise in zip(axes[0], noises):
    s = board["studies"][(task, noise)]
    for label, m in s["methods"].items():
      xs, mat = tables.seed_matrix(m["curves"])
      if len(xs):
        tables.plot_band(ax, xs, mat, label, color=colors[label])
    ax.set_title(f"{task}, {noise}")
    ax.set_xlabel("round")
    ax.set_ylabel(s["metric"])
    if s["metric"].endswith("loss"):
      ax.set_yscale("log")
  axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)

"""Compatibility re-export: the asynchronous engine moved to
``experiments.engines.asynchronous``. Kept for code and scripts that import
``experiments.async_train`` (``experiments.async_study``); new code imports
``experiments.engines.asynchronous``."""

from experiments.engines.asynchronous import (
  AsyncEngine,
  async_config,
  build_simulator,
  clock_config,
  eval_steps,
  plot_tau_histogram,
  resolve_steps,
  run_label,
  tau_report,
)

build = build_simulator  # the old name

__all__ = [
  "AsyncEngine",
  "async_config",
  "build",
  "build_simulator",
  "clock_config",
  "eval_steps",
  "plot_tau_histogram",
  "resolve_steps",
  "run_label",
  "tau_report",
]

"""Compatibility re-export: the loop and the synchronous engine moved to
``experiments.engines`` (``loop.py``, ``sync.py``; ``build.py`` for ``make_noise``).
Kept for code and scripts that import ``experiments.train``; new code imports
``experiments.engines.loop``."""

from experiments.engines.build import make_noise
from experiments.engines.evaluation import evaluate
from experiments.engines.loop import (
  DIVERGENCE_FACTOR,
  final_params,
  final_state,
  format_summary,
  make_engine,
  progress_bar,
  train,
)
from experiments.engines.outputs import is_primary
from experiments.engines.summary import describe_noise, summary_box
from experiments.engines.sync import SyncEngine, make_round

__all__ = [
  "DIVERGENCE_FACTOR",
  "SyncEngine",
  "describe_noise",
  "evaluate",
  "final_params",
  "final_state",
  "format_summary",
  "is_primary",
  "make_engine",
  "make_noise",
  "make_round",
  "progress_bar",
  "summary_box",
  "train",
]

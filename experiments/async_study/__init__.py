"""The asynchronous studies (stragglers, failures), in parts:

* :mod:`~experiments.async_study.study`: the study table (families, methods, grids, the
  condition swept and its values, seeds, budgets, claims);
* :mod:`~experiments.async_study.jobs`: the runs (configs, folders, tuning with grid-edge
  extension, report runs) and the study record, ``sweep.json``;
* :mod:`~experiments.async_study.report`: the async sections of the one report
  (:mod:`experiments.report` writes the rest);
* ``__main__``: the command line, ``python -m experiments.async_study --help``.

The names below are re-exported lazily, so ``--help`` does not import jax.
"""

_EXPORTS = {
  "study": (
    "BUDGET CLAIMS FAMILIES FM_FULL METHODS MR_FULL Claim Family _matched family grid_points "
    "setting"
  ),
  "jobs": (
    "NotRun edge_report final_jobs kept_points run_config run_dir run_one run_rel study_record "
    "tune_jobs tune_method write_study"
  ),
  "report": "spread_stats write",
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names.split()}


def __getattr__(name):
  if name not in _WHERE:
    raise AttributeError(f"module 'experiments.async_study' has no attribute {name!r}")
  import importlib

  return getattr(importlib.import_module(f"experiments.async_study.{_WHERE[name]}"), name)

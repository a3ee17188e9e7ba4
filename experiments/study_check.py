"""The rules a study must keep before its numbers are quoted (``experiments.report --check``).

:func:`check` returns one line per broken rule, each naming the folder, the kind and what
to do:

* ``study``: no ``sweep.json`` under the folder, or one made before these rules;
* ``edge``: a method's kept point sits on an open grid edge (extend the grid or declare the
  bound in ``config.sweep.bounds``);
* ``seeds``: fewer than 5 report seeds, a report seed that is also a tuning seed, or a
  report run missing;
* ``code``: the study's runs came from more than one code version, from a checkout with
  local edits, or from unknown code;
* ``budget``: runs of other lengths than the study's, or a budget a report run never
  logged;
* ``config``: report runs whose configs differ beyond method, seed, length and the grid
  fields;
* ``ci``: a method with fewer than 2 report runs (no interval);
* a study's claims (``sweep.json`` ``claims``) need both methods with at least their
  ``min_seeds`` report runs (``seeds``).

A study may report its methods in several settings (``settings``, e.g. the straggler
severities of :mod:`experiments.async_study`; ``runs`` is then ``{setting: [runs]}``), count
its budgets and lengths in simulated seconds (``unit: 'time'``), give a method its own
``report_seeds`` or run lengths (``tune_rounds``, ``report_rounds``: e.g. an asynchronous
arm's server steps) and declare config fields its methods differ in (``varying``).

All the studies under one folder form one set of tables, so they must also share one code
version, and the studies of one task the same budgets.
"""

from __future__ import annotations

import json
import os

from experiments.study_runs import find_studies, run_length, runs_by_setting, unit_of, value_at
from experiments.metrics_log import read_jsonl

MIN_REPORT_SEEDS = 5
# Config fields a study may vary between its report runs.
VARYING = {"method", "seed", "rounds", "hparams", "tuned", "progress"}


def _read(path):
  try:
    return json.load(open(path))
  except (OSError, json.JSONDecodeError):
    return None


def check(root: str) -> list[str]:
  """Every broken rule of every study under ``root``, one line each."""
  if not os.path.isdir(root):
    return [f"{root}: no such folder; give a results folder (e.g. experiments/results/async)"]
  studies = find_studies(root)
  if not studies and os.path.exists(os.path.join(root, "tail_index.json")):
    return check_tail_index(root)
  if not studies:
    script = os.path.join(root, "run_study.sh")
    how = f"bash {script}" if os.path.exists(script) else "python -m experiments.sweep"
    return [f"{root}: study: no sweep.json here; re-run it with {how}"]
  problems = _unruled(root, studies)
  # A folder with its own leaderboard (a tailbench suite) is one table: its studies share a
  # budget and a commit with each other, not with a sibling suite's.
  units = sorted({u for d in studies if (u := _unit_of(root, d))})
  for u in units:
    problems += _one_table(u, [d for d in studies if _unit_of(root, d) == u])
  return problems + _one_table(root, [d for d in studies if not _unit_of(root, d)])


def _unit_of(root: str, study: str):
  """The folder between ``root`` (excluded) and ``study`` (included) that holds a
  ``leaderboard.json``, or None."""
  rel = os.path.relpath(study, root)
  if rel == ".":
    return None
  parts = rel.split(os.sep)
  for i in range(1, len(parts) + 1):
    d = os.path.join(root, *parts[:i])
    if os.path.exists(os.path.join(d, "leaderboard.json")):
      return d
  return None


def _one_table(root: str, studies: list) -> list[str]:
  """The rules of each study, and one code version and one budget per task across them."""
  problems, versions, budgets = [], {}, {}
  for d in studies:
    found, code, sweep = _check_study(d)
    problems += found
    versions[d] = code
    if sweep is not None:
      budgets.setdefault(task_of(sweep), {})[d] = (
        sweep.get("tune_rounds"),
        sweep.get("report_rounds"),
        tuple(sweep["budgets"]),
      )
  if len({frozenset(v) for v in versions.values() if v}) > 1:
    problems.append(
      f"{root}: code: its studies come from different code versions "
      f"({', '.join(sorted({_short(c) for v in versions.values() for c in v}))}); "
      "re-run them at one commit"
    )
  for task, of_task in sorted(budgets.items()):
    if len(set(of_task.values())) > 1:
      problems.append(
        f"{root}: budget: its studies of {task} use different run lengths or budgets "
        f"({sorted(set(of_task.values()), key=str)}); give them one budget"
      )
  return problems


def task_of(sweep: dict) -> str:
  """The task a study runs: its config's ``task`` (:mod:`experiments.sweep`), else the config
  files of its methods (``configs``: :mod:`experiments.async_study`). Studies of different
  tasks may run for different lengths (a simulated second of one task is not one of
  another); the studies of one task in a folder share one budget."""
  config = sweep.get("config")
  if isinstance(config, dict) and config.get("task"):
    return str(config["task"])
  specs = sweep.get("configs") or {}
  return ",".join(sorted({str(v).split(":")[0] for v in specs.values()})) or "one task"


def check_tail_index(root: str) -> list[str]:
  """The rules of a tail-index measurement (``experiments.tail_index``): every family and
  the reference readings from one clean commit, and the estimator reading each known alpha
  of ``reference.json`` within its tolerance (``tail``)."""
  families = _read(os.path.join(root, "tail_index.json")) or {}
  ref = _read(os.path.join(root, "reference.json"))
  out = []
  if ref is None:
    out.append(f"{root}: tail: no reference.json; run experiments.tail_index with --reference")
    ref = {}
  known = {n: r for n, r in ref.get("readings", {}).items() if "known_alpha" in r}
  if ref and len(known) < 4:
    out.append(
      f"{root}: tail: reference.json checks {len(known)} known alphas; re-run "
      "experiments.tail_index --reference (it checks 1.1, 1.5, 1.8 and 2.0)"
    )
  tol = ref.get("tolerance", 0.1)
  for name, r in known.items():
    q = r.get("stable_alpha_orderings")
    got = q["median"] if q else r["stable_alpha"]
    if abs(got - r["known_alpha"]) > tol:
      out.append(
        f"{root}: tail: the estimator reads {got:.3f} on {name} (known "
        f"{r['known_alpha']}), outside +-{tol}; fix the estimator before quoting readings"
      )
  versions = {_key(e.get("code") or {}) for e in [*families.values(), ref] if e}
  for v in sorted(versions, key=str):
    if v[0] is None:
      out.append(f"{root}: code: readings from unknown code; re-run experiments.tail_index")
    elif v[1]:
      out.append(f"{root}: code: readings from {v[0][:10]} with local edits; commit, re-run")
  if len(versions) > 1:
    out.append(f"{root}: code: readings from {len(versions)} code versions; re-run at one commit")
  return out


def _key(version: dict) -> tuple:
  return (version.get("commit"), version.get("dirty"))


# Files a study's tables leave in its folder; one without a sweep.json beside them is a study
# made before these rules (e.g. an older write-up's tables.md), which the check must not skip.
TABLE_FILES = ("results.json", "tables.md", "report.md")


def _unruled(root: str, studies: list) -> list[str]:
  """A ``study`` problem for every folder under ``root`` (outside the studies) holding a
  study's tables but no ``sweep.json``."""
  inside = {os.path.normpath(d) for d in studies}
  out = []
  for d, dirs, files in os.walk(root):
    dirs[:] = sorted(x for x in dirs if os.path.normpath(os.path.join(d, x)) not in inside)
    if os.path.normpath(d) not in inside and any(f in files for f in TABLE_FILES):
      out.append(
        f"{d}: study: tables without a sweep.json (made before the study rules); re-run it"
        " under them"
      )
  return out


def _short(version) -> str:
  commit, dirty = version
  return f"{(commit or 'unknown')[:10]}{'+edits' if dirty else ''}"


def _check_study(d: str):
  sweep = _read(os.path.join(d, "sweep.json"))
  if sweep is None or sweep.get("rules") != 2:
    return (
      [f"{d}: study: sweep.json was made before the study rules; re-run it with experiments.sweep"],
      set(),
      None,
    )
  out = _check_seeds(d, sweep) + _check_claims(d, sweep)
  versions = set()
  configs = {}
  unit = unit_of(sweep)
  bounds_in = sweep.get("bounds_in", "config.sweep.bounds")
  skip = set(sweep.get("varying") or []) | {
    f for v in (sweep.get("settings") or {}).values() for f in v
  }
  for method, info in sweep["methods"].items():
    for e in info.get("edges", []):
      if e["status"] == "open":
        out.append(
          f"{d}: edge: {method} kept {info['best']}, on the open {e['side']} edge of "
          f"{e['field']}; extend the grid or declare the bound in {bounds_in}"
        )
    grid_fields = {f for c in info["grid"].values() for f in c["point"]} | skip
    # A method may count its own length (the asynchronous arm of experiments.wallclock:
    # server steps, twice the rounds): its tune_rounds / report_rounds.
    report_length = info.get("report_rounds", sweep["report_rounds"])
    tune_length = info.get("tune_rounds", sweep["tune_rounds"])
    for setting, rels in runs_by_setting(info).items():
      where = f" in {setting}" if setting else ""
      if len(rels) < 2:
        out.append(f"{d}: ci: {method} has {len(rels)} report run(s){where}; no interval")
      if len(rels) < len(info.get("report_seeds") or []):
        out.append(
          f"{d}: seeds: {method} has {len(rels)} report runs{where} for its "
          f"{len(info['report_seeds'])} report seeds; run the rest"
        )
      for rel in rels:
        out += _check_run(d, rel, report_length, sweep["budgets"], versions, unit)
        cfg = _read(os.path.join(d, rel, "config.json"))
        if cfg is not None:
          configs[f"{method}/{rel}"] = _comparable(cfg, grid_fields)
    for cell in info["grid"].values():
      for rel in cell.get("runs", []):
        out += _check_run(d, rel, tune_length, [], versions, unit)
  out += _check_configs(d, configs) + _check_code(d, versions)
  return out, versions, sweep


def _check_seeds(d: str, sweep: dict) -> list[str]:
  """At least 5 report seeds per method (a method may name its own, ``report_seeds``), none
  a tuning seed."""
  out, tune = [], set(sweep["tune_seeds"])
  report = list(sweep["report_seeds"])
  if len(report) < MIN_REPORT_SEEDS:
    out.append(f"{d}: seeds: {len(report)} report seeds; report on at least {MIN_REPORT_SEEDS}")
  if tune & set(report):
    out.append(f"{d}: seeds: report seeds {sorted(tune & set(report))} are tuning seeds")
  for method, info in sweep["methods"].items():
    own = info.get("report_seeds")
    if own is None:
      continue
    if len(set(own)) < MIN_REPORT_SEEDS:
      out.append(
        f"{d}: seeds: {method} has {len(set(own))} report seeds; report on at least "
        f"{MIN_REPORT_SEEDS}"
      )
    if tune & set(own):
      out.append(f"{d}: seeds: {method}'s report seeds {sorted(tune & set(own))} are tuning seeds")
  return out


def _check_claims(d: str, sweep: dict) -> list[str]:
  """A claim (``sweep['claims']``) needs both its methods, each with at least its
  ``min_seeds`` report runs in every setting it names (more for a small effect)."""
  out = []
  for c in sweep.get("claims") or []:
    need = int(c.get("min_seeds", MIN_REPORT_SEEDS))
    for m in (c["a"], c["b"]):
      info = sweep["methods"].get(m)
      if info is None:
        out.append(f"{d}: seeds: claim {c['name']} rests on {m}, which the study did not run")
        continue
      runs = runs_by_setting(info)
      for setting in c.get("settings") or list(runs):
        n = len(runs.get(setting, []))
        if n < need:
          where = f" in {setting}" if setting else ""
          out.append(
            f"{d}: seeds: claim {c['name']} needs {need} report seeds of {m}{where}, it has "
            f"{n}; add seeds to the study"
          )
  return out


def _check_configs(d: str, configs: dict) -> list[str]:
  distinct = {json.dumps(c, sort_keys=True, default=str) for c in configs.values()}
  if len(distinct) > 1:
    return [
      f"{d}: config: report runs differ beyond method, seed, length and grid fields "
      f"({len(distinct)} configs); re-run them from one config"
    ]
  return []


def _check_code(d: str, versions: set) -> list[str]:
  out = []
  if len(versions) > 1:
    out.append(
      f"{d}: code: runs from {len(versions)} code versions "
      f"({', '.join(sorted(_short(v) for v in versions))}); re-run at one commit"
    )
  for v in versions:
    if v[0] is None:
      out.append(f"{d}: code: runs from unknown code (no git commit recorded)")
    elif v[1]:
      out.append(f"{d}: code: runs from {v[0][:10]} with local edits; commit, then re-run")
  return out


def _comparable(cfg: dict, grid_fields: set) -> dict:
  cfg = {k: v for k, v in cfg.items() if k not in VARYING}
  for field in grid_fields:
    *path, last = field.split(".")
    node = cfg
    for p in path:
      node = node.get(p, {}) if isinstance(node, dict) else {}
    if isinstance(node, dict):
      node.pop(last, None)
  return cfg


def _check_run(d, rel, length, budgets, versions, unit="round") -> list[str]:
  run = os.path.join(d, rel)
  summary = _read(os.path.join(run, "summary.json"))
  if summary is None:
    return [f"{d}: seeds: run {rel} is missing (no summary.json); re-run the study to finish it"]
  out = []
  for v in summary.get("code") or [{"commit": None, "dirty": None}]:
    versions.add(_key(v))
  total = run_length(summary, unit)
  if total != length:
    what = "rounds" if unit == "round" else "simulated s"
    out.append(f"{d}: budget: run {rel} is {total} {what} long, the study's are {length}")
  if budgets and not summary.get("diverged"):
    rows = read_jsonl(os.path.join(run, "metrics.jsonl"))
    metric = summary["report_metric"]
    missing = [b for b in budgets if value_at(rows, metric, b, unit, summary.get("total")) is None]
    if missing:
      at = "rounds" if unit == "round" else "simulated s"
      out.append(f"{d}: budget: run {rel} logged no {metric} at {at} {missing}")
  return out

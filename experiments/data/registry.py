"""Which data artifacts and tasks exist: collected from the modules of ``experiments/data/``.

A dataset is one module of this package. It declares

* ``ARTIFACTS``: a tuple of the :class:`experiments.data.fetch.Artifact` files it reads
  (pinned registry files, plus the step that unpacks them);
* its tasks: functions decorated with :func:`task`, each building ``(FederatedData, Model)``
  for the configs whose ``config.task`` is the task's name.

Nothing is listed anywhere else: on first use :func:`artifacts` and :func:`tasks` import
every module of the package (by name, so no module imports the datasets), collect both and
check that names are unique. A dataset module therefore imports its heavy or optional
dependencies (tensorflow-datasets, sacrebleu, ...) inside the functions that use them.

This module imports nothing of the package itself.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Task", "artifact", "artifacts", "get_task", "list_artifacts", "task", "tasks"]

PACKAGE = "experiments.data"


@dataclasses.dataclass(frozen=True)
class Task:
  """A named way to build an experiment's data and model from a config.

  Attributes:
    name: the ``config.task`` that selects it.
    build: ``build(config, make_model) -> (FederatedData, Model)``. ``make_model(**fixed)``
      builds ``config.model`` (its ``name``, its ``kwargs`` updated with ``fixed``: what
      the data decides, e.g. ``num_classes``); ``make_model(name, **kwargs)`` builds the
      registered model ``name`` with exactly ``kwargs``.
    artifacts: names of the artifacts the task reads, fetched together before ``build``.
    check: ``check(config)``, run before ``build``: raises
      :class:`experiments.data.fetch.MissingArtifactError` (one line) when data that is not
      an artifact (a tfds dataset) cannot be had here.
    prepare: ``prepare(config)``: makes that data local now (``python -m
      experiments.data.fetch --config``).
    module: the module that declares the task.
  """

  name: str
  build: Callable[[Any, Callable[..., Any]], tuple]
  artifacts: tuple[str, ...] = ()
  check: Callable[[Any], None] | None = None
  prepare: Callable[[Any], None] | None = None
  module: str = ""


def task(
  name: str,
  *,
  artifacts: Sequence[str] = (),
  check: Callable[[Any], None] | None = None,
  prepare: Callable[[Any], None] | None = None,
) -> Callable[[Callable], Task]:
  """Declares ``build(config, make_model)`` as task ``name`` (see :class:`Task`)."""

  def declare(build: Callable) -> Task:
    return Task(name, build, tuple(artifacts), check, prepare, build.__module__)

  return declare


@functools.cache
def _modules() -> tuple:
  package = importlib.import_module(PACKAGE)
  names = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name[0] != "_")
  return tuple(importlib.import_module(f"{PACKAGE}.{n}") for n in names)


def _unique(kind: str, items: list[tuple[str, Any, str]]) -> dict[str, Any]:
  out, where = {}, {}
  for name, item, module in items:
    if name in out and out[name] is not item:
      raise ValueError(f"{kind} {name!r} is declared twice: in {where[name]} and in {module}.")
    out[name], where[name] = item, module
  return out


@functools.cache
def artifacts() -> dict[str, Any]:
  """``{name: Artifact}`` of every module's ``ARTIFACTS``."""
  found = [(a.name, a, m.__name__) for m in _modules() for a in getattr(m, "ARTIFACTS", ())]
  return _unique("data artifact", found)


@functools.cache
def tasks() -> dict[str, Task]:
  """``{name: Task}`` of every module's :func:`task` declarations."""
  found = [
    (t.name, t, m.__name__)
    for m in _modules()
    for t in vars(m).values()
    if isinstance(t, Task) and t.module == m.__name__
  ]
  out = _unique("task", found)
  known = artifacts()
  for t in out.values():
    unknown = [a for a in t.artifacts if a not in known]
    if unknown:
      raise ValueError(
        f"task {t.name!r} ({t.module}) reads unknown artifacts {unknown}; "
        f"declare them in a module's ARTIFACTS (known: {', '.join(sorted(known))})."
      )
  return out


def list_artifacts() -> list[str]:
  """Names of all known artifacts, sorted."""
  return sorted(artifacts())


def artifact(name: str):
  """The :class:`~experiments.data.fetch.Artifact` named ``name``; ``KeyError`` lists the known."""
  try:
    return artifacts()[name]
  except KeyError:
    raise KeyError(
      f"Unknown data artifact {name!r}. Known artifacts: {', '.join(list_artifacts())}."
    ) from None


def get_task(name: str) -> Task:
  """Task ``name``; a ``ValueError`` naming ``config.task`` and the known tasks otherwise."""
  known = tasks()
  if name not in known:
    raise ValueError(f"config.task={name!r} is unknown; choose one of {sorted(known)}.")
  return known[name]

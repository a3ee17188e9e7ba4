"""Tasks: a config names one (``config.task``); building it gives ``(FederatedData, Model)``.

Every task is declared by the dataset module that reads its data (see
:mod:`experiments.data.registry`); this module looks it up, fetches its artifacts, builds
the config's model for it, and applies what is the same for every task
(``config.data.encode_once``, :mod:`experiments.models.encode_once`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from experiments.data import fetch, registry
from experiments.models import registry as models

__all__ = ["TASKS", "build_task", "model_factory"]


def model_factory(config) -> Callable:
  """The ``make_model`` a task's ``build`` gets: ``make_model(**fixed)`` builds
  ``config.model`` (its ``kwargs`` updated with ``fixed``); ``make_model(name, **kwargs)``
  builds the registered model ``name`` with exactly ``kwargs``."""

  def make_model(name: str | None = None, /, **kwargs):
    if name is not None:
      return models.get_model(name, **kwargs)
    section = config.model.kwargs
    merged = dict(section.to_dict() if hasattr(section, "to_dict") else section)
    merged.update(kwargs)
    return models.get_model(config.model.name, **merged)

  return make_model


def _build(task: registry.Task, config) -> tuple:
  data, model = task.build(config, model_factory(config))
  d = config.get("data") if hasattr(config, "get") else None
  if d is not None and d.get("encode_once"):
    from experiments.models.encode_once import encode_once

    return encode_once(data, model, config.eval_batch_size)
  return data, model


class _Tasks(Mapping):
  """``{name: build(config) -> (FederatedData, Model)}`` over the declared tasks (no fetching)."""

  def __getitem__(self, name: str) -> Callable:
    task = registry.tasks()[name]
    return lambda config: _build(task, config)

  def __iter__(self) -> Iterator[str]:
    return iter(registry.tasks())

  def __len__(self) -> int:
    return len(registry.tasks())


TASKS: Mapping[str, Callable] = _Tasks()


def build_task(config):
  """``(FederatedData, Model)`` of a config. Every data artifact the task needs is fetched
  first, all at once (a no-op when cached; one-line ``MissingArtifactError`` when it cannot
  be had), and a tfds task that is not prepared fails at once when offline. An unknown
  ``config.task`` is a one-line ``ValueError`` naming the known tasks."""
  task = registry.get_task(config.task)
  fetch.ensure_for_config(config)
  return _build(task, config)

"""Task registry: a config names a task; a task builds (FederatedData, Model)."""

from __future__ import annotations

from typing import Callable

from tailopt.data import synthetic
from tailopt.models import simple

TaskBuilder = Callable[..., tuple]
TASKS: dict[str, TaskBuilder] = {}


def register(name: str):
  def deco(fn):
    TASKS[name] = fn
    return fn
  return deco


@register("synthetic")
def synthetic_task(config):
  s = config.synthetic
  n_clients = config.data_clients or config.clients
  data = synthetic.make_task(
      s.task, num_clients=n_clients, dim=s.dim, examples_per_client=s.examples_per_client,
      test_examples=s.test_examples, partition=s.partition, heterogeneity=s.heterogeneity,
      dirichlet_beta=s.dirichlet_beta, num_classes=s.num_classes,
      label_noise=s.label_noise, seed=config.seed)
  if s.task == "least_squares":
    model = simple.make_linear_regression(s.dim)
  elif s.task == "logistic":
    model = simple.make_logistic_regression(s.dim)
  else:
    model = simple.make_mlp_classifier(s.dim, s.num_classes, hidden=s.hidden)
  return data, model


def build_task(config):
  if config.task not in TASKS:
    raise ValueError(f"config.task={config.task!r} is unknown; choose one of {sorted(TASKS)}.")
  return TASKS[config.task](config)

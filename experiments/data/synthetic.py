"""The synthetic task: :mod:`tailopt.data.synthetic` problems (no downloads) and their models.

``config.synthetic`` picks the problem (``least_squares``, ``logistic`` or ``mlp``), its
size and how it is split across clients; the model is the matching one of
:mod:`experiments.models.simple` (linear regression, logistic regression, an MLP).
"""

from __future__ import annotations

from experiments.data.registry import task
from tailopt.data import synthetic

__all__ = ["synthetic_task"]


@task("synthetic")
def synthetic_task(config, make_model):
  """Federated least squares, logistic regression or an MLP classifier on generated data."""
  s = config.synthetic
  data = synthetic.make_task(
    s.task,
    num_clients=config.data_clients or config.clients,
    dim=s.dim,
    examples_per_client=s.examples_per_client,
    test_examples=s.test_examples,
    partition=s.partition,
    heterogeneity=s.heterogeneity,
    dirichlet_beta=s.dirichlet_beta,
    num_classes=s.num_classes,
    label_noise=s.label_noise,
    seed=config.seed,
  )
  if s.task == "least_squares":
    model = make_model("linear_regression", dim=s.dim)
  elif s.task == "logistic":
    model = make_model("logistic_regression", dim=s.dim)
  else:
    model = make_model("mlp", dim=s.dim, num_classes=s.num_classes, hidden=s.hidden)
  return data, model

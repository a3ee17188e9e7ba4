"""Models as pure functions over plain params pytrees (see :mod:`experiments.models.contract`).

``get_model(name, **kwargs)`` builds any registered model: ``char_transformer``, ``cnn``,
``vit``, ``bert`` (alias ``minilm``), ``llama`` (alias ``smollm2``), ``seq2seq``, and the
synthetic-task ``linear_regression``, ``logistic_regression``, ``mlp``.
"""

from experiments.models.contract import Model, count_params
from experiments.models.trainable import partition_params
from experiments.models.registry import get_factory, get_model, list_models

__all__ = ["Model", "count_params", "get_factory", "get_model", "list_models", "partition_params"]

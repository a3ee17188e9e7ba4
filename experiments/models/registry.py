"""Model registry: ``get_model(name, **kwargs) -> Model``."""

from __future__ import annotations

import importlib
from typing import Callable

from experiments.models.contract import Model

# name -> (module, factory); imported lazily (pretrained models read large files only when built)
_REGISTRY: dict[str, tuple[str, str]] = {
  "char_transformer": ("experiments.models.char_transformer", "make_char_transformer"),
  "cnn": ("experiments.models.cnn", "make_cnn"),
  "vit": ("experiments.models.vit", "make_vit"),
  "bert": ("experiments.models.bert", "make_bert"),
  "minilm": ("experiments.models.bert", "make_bert"),
  "llama": ("experiments.models.llama", "make_llama"),
  "smollm2": ("experiments.models.llama", "make_llama"),
  "qwen2.5": ("experiments.models.llama", "make_qwen2"),
  "seq2seq": ("experiments.models.seq2seq", "make_seq2seq"),
  # synthetic-task models (experiments.models.simple)
  "linear_regression": ("experiments.models.simple", "make_linear_regression"),
  "logistic_regression": ("experiments.models.simple", "make_logistic_regression"),
  "mlp": ("experiments.models.simple", "make_mlp_classifier"),
}


def list_models() -> list[str]:
  """Known model names (sorted)."""
  return sorted(_REGISTRY)


def get_factory(name: str) -> Callable[..., Model]:
  """The ``make_<x>`` factory registered as ``name``."""
  if name not in _REGISTRY:
    raise KeyError(f"unknown model {name!r}; known models: {', '.join(list_models())}.")
  module, attr = _REGISTRY[name]
  return getattr(importlib.import_module(module), attr)


def get_model(name: str, **kwargs) -> Model:
  """Build model ``name`` with factory keyword arguments ``kwargs``.

  >>> get_model("cnn", input_shape=(28, 28, 1), num_classes=10)
  """
  factory = get_factory(name)
  try:
    return factory(**kwargs)
  except TypeError as e:
    raise TypeError(
      f"get_model({name!r}, ...): {e}. See help({factory.__module__}.{factory.__name__})."
    ) from e

"""Shared helpers for the model tests: opened GGUF files (parsing one takes seconds), fetched once."""

import functools

from _data_helpers import need
from experiments.data import fetch


@functools.cache
def _open(name: str):
  from experiments.models.checkpoints import GGUF

  return GGUF(fetch.artifact_file(name, "gguf"))


def gguf(name: str):
  """The opened GGUF of artifact ``name`` (fetched when missing); skip only if it cannot be
  had (fail in CI)."""
  need(name)
  return _open(name)

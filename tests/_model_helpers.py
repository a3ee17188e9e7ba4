"""Shared helpers for the model tests: opened GGUF files (parsing one takes seconds), fetched once."""

import functools

import pytest

from experiments.data import fetch


@functools.cache
def _open(name: str):
  from experiments.models.checkpoints import GGUF

  return GGUF(fetch.artifact_file(name, "gguf"))


def gguf(name: str):
  """The opened GGUF of artifact ``name`` (fetched when missing); skip only if it cannot be had."""
  try:
    fetch.ensure(name)
  except fetch.MissingArtifactError as e:
    pytest.skip(str(e))
  return _open(name)

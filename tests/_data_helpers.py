"""Shared helpers for the data tests."""

import pathlib

import pytest

from experiments.data import fetch

_FAILED: dict[str, str] = {}  # artifact -> skip message, so a failing fetch is tried once


def need(name: str) -> pathlib.Path:
  """Fetch artifact ``name`` (a no-op when cached); skip the test only if that fails."""
  if name in _FAILED:
    pytest.skip(_FAILED[name])
  try:
    return fetch.ensure(name)
  except fetch.MissingArtifactError as e:
    _FAILED[name] = str(e)
    pytest.skip(str(e))

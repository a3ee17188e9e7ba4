"""Shared helpers for the data tests."""

import os
import pathlib

import pytest

from experiments.data import fetch

_FAILED: dict[str, str] = {}  # artifact -> message, so a failing fetch is tried once


def unavailable(message: str):
  """A test's artifact cannot be had here: skip it, but fail it in CI (``$CI`` set), where
  every artifact must be fetchable."""
  if os.environ.get("CI"):
    pytest.fail(f"CI: {message}", pytrace=False)
  pytest.skip(message)


def need(name: str) -> pathlib.Path:
  """Fetch artifact ``name`` (a no-op when cached); skip the test only if that fails (fail
  it in CI: :func:`unavailable`)."""
  if name in _FAILED:
    unavailable(_FAILED[name])
  try:
    return fetch.ensure(name)
  except fetch.MissingArtifactError as e:
    _FAILED[name] = str(e)
    unavailable(str(e))

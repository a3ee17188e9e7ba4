"""Reads TensorBoard event files back with TensorBoard's own reader (a dev dependency)."""

import pytest


def tensorboard_scalars(directory) -> dict[str, list[tuple[int, float, float]]]:
  """``{tag: [(step, value, wall_time), ...]}`` as TensorBoard shows them (events a resumed
  run purged are hidden; every event kept)."""
  ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
  acc = ea.EventAccumulator(str(directory), size_guidance={ea.SCALARS: 0})
  acc.Reload()
  return {
    tag: [(e.step, e.value, e.wall_time) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]
  }


def event_steps(directory, tag="train/loss") -> list[int]:
  """The steps of ``tag`` that TensorBoard shows for ``directory``."""
  return [s for s, _, _ in tensorboard_scalars(directory).get(tag, [])]

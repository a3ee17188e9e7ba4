"""Shared by the compression tests: a compressor applied to one leaf as a round applies it."""

import jax


def coder(comp):
  """``(x, state, key) -> (decoded, payload, state)`` for a one-leaf tree ``{"x": x}``:
  compressed and decoded in one jitted call, as in a round (one compile, not one per
  operation). ``state=None``: the compressor's initial state."""

  def both(x, state, key):
    state = comp.init({"x": x}) if state is None else state
    payload, state = comp.compress({"x": x}, state, key)
    return comp.decompress(payload, {"x": x})["x"], payload, state

  return jax.jit(both)

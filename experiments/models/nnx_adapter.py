"""NNX modules as pure functions over plain dict params (the small vision models).

``nnx.split`` + ``State.to_pure_dict()`` at init, ``nnx.replace_by_pure_dict`` +
``nnx.merge`` inside the loss.
"""

from __future__ import annotations

from typing import Any, Callable

import jax


def nnx_apply_fns(factory: Callable[[Any], Any]):
  """Adapt an NNX module to pure ``(init, apply)`` over plain dict params.

  ``factory(rngs)`` builds the module. Returns ``init(key) -> dict`` and
  ``apply(params, *args) -> output`` which rebuilds the module inside the traced
  function with ``nnx.replace_by_pure_dict`` + ``nnx.merge``.
  """
  from flax import nnx

  graphdef, abstract_state = nnx.split(nnx.eval_shape(lambda: factory(nnx.Rngs(0))))

  def init(key: jax.Array) -> dict:
    _, state = nnx.split(factory(nnx.Rngs(params=key)))
    return state.to_pure_dict()

  def apply(params: dict, *args, **kwargs):
    state = jax.tree.map(lambda x: x, abstract_state)  # fresh copy; never mutate the template
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(graphdef, state)(*args, **kwargs)

  return init, apply

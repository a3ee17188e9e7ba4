"""Reusable checks of the :class:`~experiments.models.contract.Model` contract (used by the tests)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments.models.contract import Model


def check_contract(
  model: Model,
  batch: dict,
  *,
  clients: int = 2,
  steps: int = 20,
  lr: float = 0.1,
  key: jax.Array | None = None,
  min_drop: float = 0.0,
) -> dict:
  """Assert the contract on ``batch``; return ``{'loss0', 'loss_end', 'params', 'metrics0'}``.

  * params are a plain nested dict of arrays;
  * ``loss`` is a finite scalar, ``evaluate`` returns loss/accuracy/count scalars;
  * ``jax.vmap(jax.grad(loss))`` over a leading client axis works and is finite;
  * ``steps`` of jitted SGD on ``batch`` lower the loss by more than ``min_drop``.
  """
  key = jax.random.key(0) if key is None else key
  params = model.init(key)
  _assert_plain(params)

  cbatch = jax.tree.map(lambda x: jnp.stack([x] * clients), batch)

  # One compiled function serves every check and every SGD step: XLA compile time
  # dominates these tests on CPU.
  @jax.jit
  def step(p):
    grads = jax.vmap(jax.grad(model.loss), in_axes=(None, 0))(p, cbatch)
    new = jax.tree.map(lambda a, g: a - lr * jnp.mean(g, 0), p, grads)
    return model.loss(p, batch), model.evaluate(p, batch), grads, new

  loss0, ev, grads, p = step(params)
  loss0 = float(loss0)
  assert np.isfinite(loss0), loss0
  for k in ("loss", "accuracy", "count"):
    assert k in ev, f"evaluate() lacks {k!r}: {sorted(ev)}"
    assert np.shape(ev[k]) == (), (k, np.shape(ev[k]))
  np.testing.assert_allclose(float(ev["loss"]), loss0, rtol=1e-4, atol=1e-5)
  leaves = [np.asarray(g) for g in jax.tree.leaves(grads)]  # check in numpy: no tiny XLA compiles
  assert jax.tree.structure(grads) == jax.tree.structure(params)
  for g in leaves:
    assert g.shape[0] == clients
    assert np.all(np.isfinite(g)), "non-finite gradient"
    # identical client batches -> identical per-client grads
    np.testing.assert_allclose(g[0], g[-1], rtol=1e-5, atol=1e-6)
  assert any(np.max(np.abs(g)) > 0 for g in leaves), "all-zero gradient"

  losses = []
  for _ in range(steps - 1):
    loss, _, _, p = step(p)
    losses.append(loss)
  loss_end = float(step(p)[0])
  assert np.all(np.isfinite(np.asarray(losses))), losses
  assert np.isfinite(loss_end), loss_end
  assert loss_end < loss0 - min_drop, f"loss did not decrease: {loss0} -> {loss_end}"
  return {"loss0": loss0, "loss_end": loss_end, "params": p, "metrics0": ev}


def _assert_plain(tree, path=()):
  if isinstance(tree, dict):
    for k, v in tree.items():
      assert isinstance(k, str), f"non-str key at {path}: {k!r}"
      _assert_plain(v, path + (k,))
  else:
    assert isinstance(tree, jax.Array), f"leaf at {path} is {type(tree)}, expected jax.Array"

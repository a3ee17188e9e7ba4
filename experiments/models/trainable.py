"""Trainable subsets: a :class:`~experiments.models.contract.Model` whose params are part of the
full params, the rest frozen.

Models accept ``trainable=`` (``'all'``, ``'head'``, ``'last_n_layers:N'`` or a key-path
predicate; see :func:`partition_params`): the Model's params are then only the trainable
subtree, and the frozen remainder is closed over as constants (wrapped in
``lax.optimization_barrier`` so XLA does not constant-fold through them) and exposed as
``meta['frozen']``. Even so, with JAX's default settings XLA copies closed-over arrays into
every compiled program, which costs seconds per few hundred MB of frozen weights. Either set
``jax.config.update('jax_use_simplified_jaxpr_constants', True)`` (closed-over arrays then
become ordinary inputs: measured 5.4 s -> 0.7 s for a 2-layer SmolLM2 loss compile), or
call ``meta['loss_with_frozen'](params, frozen, batch)`` with the frozen part as an argument.

Stacked layers (leading axis = layer) run with :func:`scan_layers`, which also scans the
frozen part of a stack cut by ``'last_n_layers:N'``.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from experiments.models.contract import Batch, Model, count_params


def _deep_merge(a: dict, b: dict) -> dict:
  out = dict(a)
  for k, v in b.items():
    if k in out and isinstance(out[k], dict) and isinstance(v, dict):
      out[k] = _deep_merge(out[k], v)
    elif k in out:
      raise ValueError(f"trainable and frozen params both define leaf {k!r}.")
    else:
      out[k] = v
  return out


def _split_by_path(
  tree: dict, pred: Callable[[tuple[str, ...]], bool], prefix=()
) -> tuple[dict, dict]:
  yes, no = {}, {}
  for k, v in tree.items():
    path = prefix + (k,)
    if isinstance(v, dict):
      a, b = _split_by_path(v, pred, path)
      if a:
        yes[k] = a
      if b:
        no[k] = b
    elif pred(path):
      yes[k] = v
    else:
      no[k] = v
  return yes, no


TRAINABLE_HELP = (
  "trainable must be 'all', 'head', 'last_n_layers:N' (the last N layers of the stack + "
  "final norm + head, except for tied-embedding LMs), or a callable path -> bool "
  "selecting leaves by their key path (tuple of str)."
)


def partition_params(
  params: dict,
  trainable: str | Callable[[tuple[str, ...]], bool],
  *,
  head_keys: tuple[str, ...],
  final_keys: tuple[str, ...] = (),
  layers_key: str = "layers",
  head_with_layers: bool = True,
) -> tuple[dict, dict]:
  """Split full params into ``(trainable, frozen)`` dicts.

  ``params[layers_key]`` is a stacked layer pytree (leading axis = layer). With
  ``'last_n_layers:N'`` the stack is cut: trainable gets ``layers`` = the last N, frozen
  gets ``frozen_layers`` = the rest; :func:`layer_stacks` reassembles them in order.
  ``final_keys`` (e.g. the final norm) are trainable whenever any layer is; so are
  ``head_keys`` unless ``head_with_layers=False`` (e.g. a tied LM head = the embedding).
  """
  if callable(trainable):
    return _split_by_path(params, trainable)
  if trainable == "all":
    return dict(params), {}
  if trainable == "head":
    return _split_by_path(params, lambda p: p[0] in head_keys)
  if isinstance(trainable, str) and trainable.startswith("last_n_layers:"):
    try:
      n = int(trainable.split(":", 1)[1])
    except ValueError:
      raise ValueError(f"bad trainable spec {trainable!r}. {TRAINABLE_HELP}") from None
    if layers_key not in params:
      raise ValueError(
        f"trainable={trainable!r} needs a stacked {layers_key!r} entry; this model "
        f"has {sorted(params)}. Use 'all' or a path predicate."
      )
    stack = params[layers_key]
    depth = jax.tree.leaves(stack)[0].shape[0]
    if not 0 <= n <= depth:
      raise ValueError(f"trainable={trainable!r} but the model has {depth} layers.")
    train, frozen = _split_by_path(
      {k: v for k, v in params.items() if k != layers_key},
      lambda p: p[0] in (head_keys if head_with_layers else ()) + final_keys,
    )
    if n > 0:
      train[layers_key] = jax.tree.map(lambda x: _slice0(x, depth - n, depth), stack)
    if n < depth:
      frozen["frozen_" + layers_key] = jax.tree.map(lambda x: _slice0(x, 0, depth - n), stack)
    return train, frozen
  raise ValueError(f"unknown trainable spec {trainable!r}. {TRAINABLE_HELP}")


def _slice0(x, a: int, b: int):
  if isinstance(x, jax.ShapeDtypeStruct):
    return jax.ShapeDtypeStruct((b - a,) + tuple(x.shape[1:]), x.dtype)
  return x[a:b]


def merge_params(train: dict, frozen: dict) -> dict:
  """Inverse of :func:`partition_params` (up to the layer-stack cut, see :func:`layer_stacks`)."""
  return _deep_merge(train, frozen)


def layer_stacks(params: dict, layers_key: str = "layers") -> list:
  """The layer stacks to scan, in order: ``[frozen_layers?, layers?]``."""
  out = []
  if "frozen_" + layers_key in params:
    out.append(params["frozen_" + layers_key])
  if layers_key in params:
    out.append(params[layers_key])
  return out


def scan_layers(
  block: Callable, h: jax.Array, params: dict, layers_key: str = "layers"
) -> jax.Array:
  """Run ``h = block(h, layer_params)`` over every stacked layer with ``lax.scan``."""
  for stack in layer_stacks(params, layers_key):
    h, _ = jax.lax.scan(lambda c, p: (block(c, p), None), h, stack)
  return h


def with_trainable(
  name: str,
  init_fn: Callable[[jax.Array], dict],
  full_loss: Callable[[dict, Batch], jax.Array],
  full_eval: Callable[[dict, Batch], dict],
  trainable="all",
  *,
  head_keys: tuple[str, ...] = ("head",),
  final_keys: tuple[str, ...] = (),
  head_with_layers: bool = True,
  pretrained: dict | None = None,
  meta: dict | None = None,
) -> Model:
  """Build a :class:`Model` whose params are the ``trainable`` subtree.

  ``init_fn(key)`` returns the randomly initialised params: all of them when
  ``pretrained`` is None, otherwise only the new ones (e.g. ``{'head': ...}``), which
  are overlaid on the ``pretrained`` dict. The frozen part is fixed once (from
  ``pretrained``, or from ``init_fn(PRNGKey(0))``) and closed over.
  """
  meta = dict(meta or {})
  if pretrained is not None:
    pretrained = jax.tree.map(jnp.asarray, pretrained)

  init_fn = jax.jit(init_fn)  # eager init dispatches hundreds of tiny ops

  def full_init(key):
    new = init_fn(key)
    return new if pretrained is None else _overlay(pretrained, new)

  shapes = jax.eval_shape(full_init, jax.random.key(0))
  kw = dict(head_keys=head_keys, final_keys=final_keys, head_with_layers=head_with_layers)
  train_shapes, _ = partition_params(shapes, trainable, **kw)
  meta.update(
    num_params=count_params(train_shapes),
    num_params_total=count_params(shapes),
    trainable=trainable,
  )

  if trainable == "all" and pretrained is None:
    meta.update(
      frozen={}, full_params=lambda p: p, loss_with_frozen=lambda p, f, b: full_loss(p, b)
    )
    return Model(init=full_init, loss=full_loss, evaluate=full_eval, name=name, meta=meta)

  frozen = partition_params(full_init(jax.random.key(0)), trainable, **kw)[1]

  def init(key):
    train = partition_params(full_init(key), trainable, **kw)[0]
    if pretrained is not None:  # fresh buffers: callers may donate params to jit
      train = jax.tree.map(jnp.copy, train)
    return train

  def loss_with_frozen(params, frozen_, batch):
    return full_loss(merge_params(params, frozen_), batch)

  def loss(params, batch):
    return full_loss(merge_params(params, jax.lax.optimization_barrier(frozen)), batch)

  def evaluate(params, batch):
    return full_eval(merge_params(params, jax.lax.optimization_barrier(frozen)), batch)

  meta.update(
    frozen=frozen, full_params=lambda p: merge_params(p, frozen), loss_with_frozen=loss_with_frozen
  )
  return Model(init=init, loss=loss, evaluate=evaluate, name=name, meta=meta)


def _overlay(base: dict, top: dict) -> dict:
  """``base`` with the leaves of ``top`` put in (recursively)."""
  out = dict(base)
  for k, v in top.items():
    if isinstance(v, dict) and isinstance(out.get(k), dict):
      out[k] = _overlay(out[k], v)
    else:
      out[k] = v
  return out

r"""Compressors for the pseudo-gradients a node sends: fewer bytes per round.

A :class:`Compressor` turns one node's :math:`\Delta_i` (a pytree) into a *payload* (the
arrays that cross the client axis) and back::

    comp = tailopt.compression.int_quantizer(bits=8, block=256, stochastic=True)
    comp = tailopt.compression.error_feedback(comp)        # a per-node residual
    rnd = tailopt.build_round(loss_fn, method, local_steps=4, num_clients=8,
                              compressor=comp)              # metrics: bytes_up, bytes_down

The round all-gathers the payloads (int8 codes and float32 block scales, packed 2 or 4 to a
byte below 8 bits) and each device decodes and averages them; nothing is averaged in float32
before it crosses the axis. ``bytes_up`` counts exactly the payload's bytes.

Pieces:

* :func:`int_quantizer`: symmetric integer codes with a per-block absmax scale
  (:math:`q = \mathrm{round}(x / s)`, :math:`s = \max_{\text{block}}|x| / (2^{b-1} - 1)`),
  2 to 8 bits; ``stochastic=True`` rounds up with probability equal to the fraction
  (unbiased: :math:`E[\hat x] = x`).
* :func:`fp8_quantizer`: float8 e4m3 codes with a per-block scale into its range (448).
* :func:`fixed_range_quantizer`: a fixed grid on :math:`[-B, B]` with no scales at all. With
  an inner BiClip every local step moves each coordinate by at most :math:`\eta u`, so every
  coordinate of :math:`\Delta_i` lies in :math:`[-z\eta u, z\eta u]`
  (:func:`biclip_delta_bound`); the grid then needs no per-tensor scale [our decision].
* :func:`topk_sparsifier`: chunk-wise top-k: in each chunk of ``chunk`` coordinates the
  ``k`` of largest :math:`|x|` are sent as values (float32, or ``value_bits``-bit codes with
  one scale per chunk) and in-chunk indices (uint8 up to 256 coordinates a chunk, uint16 up
  to 65536); the rest are zero. With :func:`error_feedback` (``decay`` :math:`\beta`) this is
  SparseLoCo's compressor (Sarfi et al. 2025).
* :func:`sign_quantizer`: one bit per coordinate (8 to a byte) and one float32 scale per
  block, the block's mean :math:`|x|`: :math:`\hat x = \mathrm{mean}_\text{block}|x| \cdot
  \mathrm{sign}(x)` (the scaled sign of Karimireddy et al. 2019; sign(0) = +1).
* :func:`error_feedback`: sends :math:`C(\Delta + \beta e)` and keeps
  :math:`e \leftarrow \Delta + \beta e - \hat C(\Delta + \beta e)` per node (Seide et al.
  2014; Karimireddy et al. 2019; :math:`\beta = 1` by default, SparseLoCo's decay below 1).
* :func:`identity`: full precision (32 bits), for comparisons on the same code path.

References:
  Alistarh et al., "QSGD", NeurIPS 2017 (stochastic rounding).
  Karimireddy et al., "Error Feedback Fixes SignSGD and other Gradient Compression
  Schemes", ICML 2019.
  Sarfi et al., "Communication Efficient LLM Pre-training with SparseLoCo", arXiv
  2508.15706, 2025 (chunk-wise top-k with error feedback).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

Payload = Any


class Compressor(NamedTuple):
  """``init(params) -> state`` (per node; ``None`` when stateless),
  ``compress(tree, state, key) -> (payload, state)``,
  ``decompress(payload, like) -> tree`` (``like``: the tree's shapes and dtypes),
  ``name``: a label (``'int8/256'``, ``'ef+int4/256'``...)."""

  init: Callable[[Any], Any]
  compress: Callable[[Any, Any, jax.Array], tuple]
  decompress: Callable[[Payload, Any], Any]
  name: str


def payload_bytes(payload) -> int:
  """Bytes of the arrays in a payload (static: from shapes and dtypes)."""
  return int(
    sum(
      np.prod(np.shape(x), dtype=np.int64) * jnp.dtype(x.dtype).itemsize
      for x in jax.tree.leaves(payload)
    )
  )


def _blocks(x, block, align=4):
  """Flattens ``x`` to float32 ``(n_blocks, width)``, zero-padded; ``width = block``, or
  the leaf's size rounded up to ``align`` when it is smaller than one block."""
  flat = jnp.ravel(x).astype(jnp.float32)
  n = flat.size
  width = block if n > block else max(align, -(-n // align) * align)
  nb = max(1, -(-n // width))
  return jnp.pad(flat, (0, nb * width - n)).reshape(nb, width)


def _unblock(blocks, like):
  n = int(np.prod(like.shape, dtype=np.int64))
  return blocks.reshape(-1)[:n].reshape(like.shape).astype(like.dtype)


def _round(v, key, stochastic):
  if not stochastic:
    return jnp.round(v)
  # Drawn flat (the same numbers as a draw of v.shape; XLA:CPU compiles it faster).
  u = jax.random.uniform(key, (math.prod(v.shape),), jnp.float32).reshape(v.shape)
  return jnp.floor(v + u)


def _pack(codes, bits):
  """Signed codes in [-(2^(b-1)-1), 2^(b-1)-1] -> uint8, ``8 // bits`` codes per byte."""
  if bits == 8:
    return codes.astype(jnp.int8)
  per = 8 // bits
  u = (codes + (1 << (bits - 1))).astype(jnp.uint8)  # offset to unsigned
  u = u.reshape(u.shape[:-1] + (u.shape[-1] // per, per))
  shifts = jnp.arange(per, dtype=jnp.uint8) * bits
  return jnp.sum(u << shifts, axis=-1, dtype=jnp.uint8)


def _unpack(packed, bits):
  if bits == 8:
    return packed.astype(jnp.float32)
  per = 8 // bits
  shifts = jnp.arange(per, dtype=jnp.uint8) * bits
  u = (packed[..., None] >> shifts) & jnp.uint8((1 << bits) - 1)
  u = u.reshape(u.shape[:-2] + (u.shape[-2] * per,))
  return u.astype(jnp.float32) - (1 << (bits - 1))


def _check_bits(bits, allowed=(2, 4, 8)):
  if bits not in allowed:
    raise ValueError(f"bits={bits}; use one of {allowed}.")


def _leafwise(encode_leaf, decode_leaf, name, stochastic=False):
  """A stateless compressor from per-leaf ``encode(x, key)`` / ``decode(payload, like)``."""

  def compress(tree, state, key):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, max(len(leaves), 1)) if stochastic else [None] * len(leaves)
    return jax.tree.unflatten(treedef, [encode_leaf(x, k) for x, k in zip(leaves, keys)]), state

  def decompress(payload, like):
    like_leaves, treedef = jax.tree.flatten(like)
    pay_leaves = treedef.flatten_up_to(payload)
    return jax.tree.unflatten(treedef, [decode_leaf(p, l) for p, l in zip(pay_leaves, like_leaves)])

  return Compressor(lambda params: None, compress, decompress, name)


def int_quantizer(bits: int = 8, block: int = 256, stochastic: bool = False) -> Compressor:
  """Symmetric ``bits``-bit integer codes with one float32 absmax scale per ``block``.

  Error bound (deterministic rounding): ``|x - x_hat| <= s / 2`` per coordinate with
  ``s = max|x_block| / (2^(bits-1) - 1)``; stochastic rounding: ``< s`` and unbiased.
  Codes of 2 and 4 bits are packed 4 and 2 to a byte.
  """
  _check_bits(bits)
  if block < 1 or block % (8 // bits):
    raise ValueError(
      f"block={block} must be a positive multiple of {8 // bits} for {bits}-bit codes."
    )
  qmax = (1 << (bits - 1)) - 1

  def encode(x, key):
    b = _blocks(x, block)
    amax = jnp.max(jnp.abs(b), axis=1)
    scale = jnp.where(amax > 0, amax / qmax, 1.0)
    codes = jnp.clip(_round(b / scale[:, None], key, stochastic), -qmax, qmax)
    return {"codes": _pack(codes, bits), "scales": scale}

  def decode(p, like):
    return _unblock(_unpack(p["codes"], bits) * p["scales"][:, None], like)

  tag = "sr-" if stochastic else ""
  return _leafwise(encode, decode, f"{tag}int{bits}/{block}", stochastic)


F8_MAX = 448.0  # largest finite float8_e4m3fn


def fp8_quantizer(block: int = 256) -> Compressor:
  """float8 e4m3 codes with one float32 scale per ``block`` (absmax mapped to 448).

  Relative error per coordinate at most 2^-4 (3 mantissa bits, round to nearest) for
  values in the normal range of the scaled block.
  """
  if block < 1:
    raise ValueError(f"block={block} must be >= 1.")

  def encode(x, key):
    del key
    b = _blocks(x, block, align=1)
    amax = jnp.max(jnp.abs(b), axis=1)
    scale = jnp.where(amax > 0, amax / F8_MAX, 1.0)
    return {"codes": (b / scale[:, None]).astype(jnp.float8_e4m3fn), "scales": scale}

  def decode(p, like):
    return _unblock(p["codes"].astype(jnp.float32) * p["scales"][:, None], like)

  return _leafwise(encode, decode, f"fp8/{block}")


def fixed_range_quantizer(bound: float, bits: int = 8, stochastic: bool = False) -> Compressor:
  """A fixed grid of ``2^bits - 1`` levels on ``[-bound, bound]``: no scales are sent.

  Values outside the range are clipped to it (none are, for an inner BiClip with
  ``bound = biclip_delta_bound(...)``). Error bound: ``bound / (2^(bits-1) - 1) / 2``
  (deterministic) or ``< bound / (2^(bits-1) - 1)`` and unbiased inside the range
  (stochastic).
  """
  _check_bits(bits)
  bound = float(bound)
  if not bound > 0 or math.isinf(bound):
    raise ValueError(f"fixed_range_quantizer: bound={bound} must be finite and > 0.")
  qmax = (1 << (bits - 1)) - 1
  step = bound / qmax
  per = 8 // bits

  def encode(x, key):
    flat = jnp.ravel(x).astype(jnp.float32)
    n = flat.size
    flat = jnp.pad(flat, (0, (-n) % per))
    codes = jnp.clip(_round(flat / step, key, stochastic), -qmax, qmax)
    return {"codes": _pack(codes, bits)}

  def decode(p, like):
    n = int(np.prod(like.shape, dtype=np.int64))
    vals = _unpack(p["codes"], bits)[:n] * step
    return vals.reshape(like.shape).astype(like.dtype)

  tag = "sr-" if stochastic else ""
  return _leafwise(encode, decode, f"{tag}fixed{bits}[{bound:.3g}]", stochastic)


def _index_dtype(width: int):
  """The narrowest unsigned dtype holding an in-chunk index below ``width``."""
  return jnp.uint8 if width <= 256 else jnp.uint16 if width <= 65536 else jnp.int32


def topk_sparsifier(k: int, chunk: int = 64, value_bits: int = 32) -> Compressor:
  r"""Chunk-wise top-k: each leaf is flattened to chunks of ``chunk`` coordinates
  (zero-padded; a leaf smaller than one chunk is one chunk of its size) and in each chunk the
  :math:`k` coordinates of largest :math:`|x|` are kept (ties: the lower index), the rest set
  to zero:

  .. math::

      \hat x_j = x_j \;\text{if } j \in \operatorname{top}_k(|x_\text{chunk}|)
      \text{ else } 0.

  The payload per chunk: the ``k`` in-chunk indices (uint8 up to 256 coordinates a chunk,
  uint16 up to 65536) and the ``k`` values, in float32 (``value_bits=32``) or as symmetric
  ``value_bits``-bit codes (2, 4 or 8) with one float32 absmax scale per chunk, as
  SparseLoCo's 2-bit values. Bytes per chunk: :math:`k (b_\text{idx} + b_v)` (+ 4 for the
  scale). Use it with :func:`error_feedback` (SparseLoCo: decay :math:`\beta < 1`), which
  keeps what a round did not send.

  Reference: Sarfi et al., "Communication Efficient LLM Pre-training with SparseLoCo", 2025;
  Stich et al., "Sparsified SGD with Memory", NeurIPS 2018.
  """
  if not isinstance(chunk, int) or chunk < 1:
    raise ValueError(f"topk_sparsifier: chunk={chunk!r} must be an integer >= 1.")
  if not isinstance(k, int) or not 1 <= k <= chunk:
    raise ValueError(f"topk_sparsifier: k={k!r} must be an integer in [1, chunk={chunk}].")
  if value_bits != 32:
    _check_bits(value_bits)
    if k % (8 // value_bits):
      raise ValueError(
        f"topk_sparsifier: k={k} must be a multiple of {8 // value_bits} to pack "
        f"{value_bits}-bit values."
      )
  per = 1 if value_bits == 32 else 8 // value_bits
  qmax = (1 << (value_bits - 1)) - 1 if value_bits != 32 else None

  def encode(x, key):
    del key
    b = _blocks(x, chunk, align=max(per, 1))
    kk = min(k, b.shape[1])
    _, idx = jax.lax.top_k(jnp.abs(b), kk)
    vals = jnp.take_along_axis(b, idx, axis=1)
    out = {"indices": idx.astype(_index_dtype(b.shape[1]))}
    if value_bits == 32:
      out["values"] = vals
      return out
    amax = jnp.max(jnp.abs(vals), axis=1)
    scale = jnp.where(amax > 0, amax / qmax, 1.0)
    codes = jnp.clip(jnp.round(vals / scale[:, None]), -qmax, qmax)
    return {**out, "codes": _pack(codes, value_bits), "scales": scale}

  def decode(p, like):
    n = int(np.prod(like.shape, dtype=np.int64))
    width = chunk if n > chunk else max(per, -(-n // per) * per)
    idx = p["indices"].astype(jnp.int32)
    if "values" in p:
      vals = p["values"]
    else:
      vals = _unpack(p["codes"], value_bits) * p["scales"][:, None]
    rows = jnp.arange(idx.shape[0])[:, None]
    dense = jnp.zeros((idx.shape[0], width), jnp.float32).at[rows, idx].set(vals)
    return _unblock(dense, like)

  tag = "" if value_bits == 32 else f",int{value_bits}"
  return _leafwise(encode, decode, f"top{k}/{chunk}{tag}")


def sign_quantizer(block: int = 256) -> Compressor:
  r"""One bit per coordinate and one float32 scale per ``block``: the scaled sign

  .. math::

      \hat x_j = s \cdot \mathrm{sign}(x_j),\qquad s = \frac{1}{|B|}\sum_{i \in B} |x_i|,

  with :math:`\mathrm{sign}(0) = +1` and :math:`B` the block's coordinates (the padding of the
  last block does not count). The signs travel 8 to a byte, so a block costs
  ``block / 8 + 4`` bytes (:math:`\approx` 1.1 bits a coordinate at ``block=256``). Biased;
  use it with :func:`error_feedback` (EF-SignSGD).

  Reference: Karimireddy et al., "Error Feedback Fixes SignSGD and other Gradient Compression
  Schemes", ICML 2019 (the scaled sign :math:`\|x\|_1 / d \cdot \mathrm{sign}(x)`).
  """
  if not isinstance(block, int) or block < 8 or block % 8:
    raise ValueError(f"sign_quantizer: block={block!r} must be a positive multiple of 8.")

  def encode(x, key):
    del key
    n = int(np.prod(jnp.shape(x), dtype=np.int64))
    b = _blocks(x, block, align=8)
    nb, width = b.shape
    count = np.clip(n - np.arange(nb) * width, 1, width).astype(np.float32)
    scale = jnp.sum(jnp.abs(b), axis=1) / count
    return {"signs": jnp.packbits(b >= 0, axis=-1), "scales": scale}

  def decode(p, like):
    bits = jnp.unpackbits(p["signs"], axis=-1).astype(jnp.float32)
    return _unblock((2.0 * bits - 1.0) * p["scales"][:, None], like)

  return _leafwise(encode, decode, f"sign/{block}")


def identity() -> Compressor:
  """Full precision: the payload is the tree in float32."""
  return _leafwise(
    lambda x, key: {"values": x.astype(jnp.float32)},
    lambda p, like: p["values"].astype(like.dtype),
    "fp32",
  )


class ErrorFeedbackState(NamedTuple):
  residual: Any  # e: what the compressor has not sent yet (float32, like params)
  inner: Any


def error_feedback(compressor: Compressor, decay: float = 1.0) -> Compressor:
  r"""Error feedback: compress :math:`\Delta + \beta e`, keep :math:`e \leftarrow \Delta +
  \beta e - \hat C(\Delta + \beta e)` in the node's state. With :math:`\beta = 1` (default)
  the sum of what was sent over rounds equals the sum of the :math:`\Delta`\ s minus the last
  residual; :math:`\beta < 1` is SparseLoCo's decayed accumulator (Sarfi et al. 2025)."""
  if not isinstance(compressor, Compressor):
    raise TypeError(
      f"error_feedback needs a Compressor to wrap (e.g. tailopt.compression.int_quantizer(4)); "
      f"got {type(compressor).__name__}."
    )
  decay = float(decay)
  if not 0.0 <= decay <= 1.0:
    raise ValueError(f"error_feedback: decay={decay} must be in [0, 1].")

  def init(params):
    return ErrorFeedbackState(
      jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.float32), params), compressor.init(params)
    )

  def compress(tree, state, key):
    if decay == 1.0:
      target = jax.tree.map(lambda d, e: d.astype(jnp.float32) + e, tree, state.residual)
    else:
      target = jax.tree.map(lambda d, e: d.astype(jnp.float32) + decay * e, tree, state.residual)
    payload, inner = compressor.compress(target, state.inner, key)
    sent = compressor.decompress(payload, target)
    residual = jax.tree.map(lambda t, s: t - s, target, sent)
    return payload, ErrorFeedbackState(residual, inner)

  tag = "ef" if decay == 1.0 else f"ef{decay:g}"
  return Compressor(init, compress, compressor.decompress, f"{tag}+" + compressor.name)


def biclip_delta_bound(method, local_steps: int) -> Optional[float]:
  r"""``z * eta * u``: the largest :math:`|\Delta_i|` coordinate an inner BiClip (or
  value clip) with SGD can produce in ``z`` steps, or ``None`` when the method's inner is
  not a BiClip with constant rate and threshold."""
  hp = getattr(method, "hparams", {}) or {}
  if getattr(method, "inner_rule", None) != "biclip":
    return None
  lr, u = hp.get("inner_lr"), hp.get("inner_upper")
  if callable(lr) or callable(u) or hp.get("inner_lr_exponent") or hp.get("inner_upper_exponent"):
    return None
  return float(local_steps) * float(lr) * float(u)


KINDS = ("none", "int", "fp8", "fixed", "fp32", "topk", "sign")


def make(
  kind: str,
  *,
  bits: int = 8,
  block: int = 256,
  stochastic: bool = False,
  error_feedback_on: bool = False,
  bound: Optional[float] = None,
  topk: int = 0,
  ef_decay: float = 1.0,
) -> Optional[Compressor]:
  """A compressor by name, for configs: ``'none'``, ``'int'``, ``'fp8'``, ``'fixed'``,
  ``'fp32'``, ``'topk'`` (``topk`` coordinates per ``block``-coordinate chunk; values in
  ``bits`` bits, 32 = float32) and ``'sign'`` (1 bit, one scale per ``block``). ``bits=32``
  means no compression for ``'int'`` and ``'fixed'`` (``None``; error feedback is then a
  no-op), so a sweep can put full precision on the same axis as the bit widths.
  ``ef_decay``: the error feedback's :math:`\\beta`."""
  if kind == "none" or (bits == 32 and kind in ("int", "fixed")):
    return None
  if kind == "int":
    comp = int_quantizer(bits, block, stochastic)
  elif kind == "fp8":
    comp = fp8_quantizer(block)
  elif kind == "fixed":
    if bound is None:
      raise ValueError(
        "the fixed-range grid needs a bound (z * inner_lr * inner_upper); "
        "use a BiClip inner with a constant rate and threshold."
      )
    comp = fixed_range_quantizer(bound, bits, stochastic)
  elif kind == "fp32":
    comp = identity()
  elif kind == "topk":
    comp = topk_sparsifier(topk, block, bits)
  elif kind == "sign":
    comp = sign_quantizer(block)
  else:
    raise ValueError(f"compression kind {kind!r}; use one of {', '.join(KINDS)}.")
  return error_feedback(comp, ef_decay) if error_feedback_on else comp

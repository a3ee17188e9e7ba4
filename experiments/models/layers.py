"""Functional building blocks (pure functions over dict params) for the transformer models.

Conventions: dense kernels are ``(in, out)`` (``x @ w``); attention tensors are
``(batch, length, heads, head_dim)``; masks are boolean, ``True`` = may attend.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

NEG_INF = -1e30


def dense_init(
  key: jax.Array, din: int, dout: int, *, bias: bool = True, scale: float = 1.0
) -> dict:
  """Normal(0, scale^2 / din) kernel ``(din, dout)`` and zero bias."""
  std = scale / math.sqrt(din)
  w = std * jax.random.normal(key, (din, dout), jnp.float32)
  return {"w": w, "b": jnp.zeros((dout,), jnp.float32)} if bias else {"w": w}


def dense(p: dict, x: jax.Array) -> jax.Array:
  y = x @ p["w"]
  return y + p["b"] if "b" in p else y


def layer_norm_init(d: int) -> dict:
  return {"scale": jnp.ones((d,), jnp.float32), "bias": jnp.zeros((d,), jnp.float32)}


def layer_norm(p: dict, x: jax.Array, eps: float = 1e-5) -> jax.Array:
  mu = jnp.mean(x, -1, keepdims=True)
  var = jnp.mean(jnp.square(x - mu), -1, keepdims=True)
  return (x - mu) * jax.lax.rsqrt(var + eps) * p["scale"] + p["bias"]


def rms_norm(scale: jax.Array, x: jax.Array, eps: float = 1e-5) -> jax.Array:
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), -1, keepdims=True) + eps) * scale


def embed_init(key: jax.Array, n: int, d: int, std: float = 0.02) -> jax.Array:
  return std * jax.random.normal(key, (n, d), jnp.float32)


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None) -> jax.Array:
  """Scaled dot-product attention with grouped K/V heads.

  q: (B, L, H, D); k, v: (B, S, Hkv, D) with H % Hkv == 0; mask broadcastable to
  (B, H, L, S), True = attend. Returns (B, L, H, D).
  """
  b, l, h, d = q.shape
  hkv = k.shape[2]
  if h != hkv:
    q = q.reshape(b, l, hkv, h // hkv, d)
    s = jnp.einsum("blkgd,bskd->bkgls", q, k) / math.sqrt(d)
    if mask is not None:
      m = jnp.broadcast_to(mask, (b, h, l, k.shape[1])).reshape(b, hkv, h // hkv, l, -1)
      s = jnp.where(m, s, NEG_INF)
    w = jax.nn.softmax(s.astype(jnp.float32), axis=-1).astype(v.dtype)
    return jnp.einsum("bkgls,bskd->blkgd", w, v).reshape(b, l, h, d)
  s = jnp.einsum("blhd,bshd->bhls", q, k) / math.sqrt(d)
  if mask is not None:
    s = jnp.where(mask, s, NEG_INF)
  w = jax.nn.softmax(s.astype(jnp.float32), axis=-1).astype(v.dtype)
  return jnp.einsum("bhls,bshd->blhd", w, v)


def causal_mask(length: int) -> jax.Array:
  """(1, 1, L, L) lower-triangular boolean mask."""
  return jnp.tril(jnp.ones((length, length), bool))[None, None]


def padding_mask(key_mask: jax.Array) -> jax.Array:
  """(B, S) valid-key mask -> (B, 1, 1, S) attention mask."""
  return key_mask.astype(bool)[:, None, None, :]


def mha_init(key: jax.Array, d: int, *, bias: bool = True) -> dict:
  """Separate q/k/v/o projections ``(d, d)``; the output projection starts scaled down."""
  kq, kk, kv, ko = jax.random.split(key, 4)
  return {
    "q": dense_init(kq, d, d, bias=bias),
    "k": dense_init(kk, d, d, bias=bias),
    "v": dense_init(kv, d, d, bias=bias),
    "o": dense_init(ko, d, d, bias=bias, scale=0.5),
  }


def mha(p: dict, x: jax.Array, kv: jax.Array, mask: jax.Array | None, heads: int) -> jax.Array:
  """Multi-head attention of queries from ``x`` over keys/values from ``kv``."""
  b, l, d = x.shape
  s = kv.shape[1]
  q = dense(p["q"], x).reshape(b, l, heads, d // heads)
  k = dense(p["k"], kv).reshape(b, s, heads, d // heads)
  v = dense(p["v"], kv).reshape(b, s, heads, d // heads)
  return dense(p["o"], attention(q, k, v, mask).reshape(b, l, d))


def mlp_init(key: jax.Array, d: int, hidden: int) -> dict:
  k1, k2 = jax.random.split(key)
  return {"fc1": dense_init(k1, d, hidden), "fc2": dense_init(k2, hidden, d, scale=0.5)}


def mlp(p: dict, x: jax.Array) -> jax.Array:
  return dense(p["fc2"], jax.nn.gelu(dense(p["fc1"], x), approximate=False))


def stacked_init(init_one, key: jax.Array, n: int):
  """Initialise ``n`` layers with ``init_one(key)`` and stack them on a leading axis."""
  return jax.vmap(init_one)(jax.random.split(key, n))

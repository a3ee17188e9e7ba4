"""A minimal reader for R's serialization format and lazy-load databases.

Enough of R's XDR serialization (versions 2 and 3) to read data packages'
``data/Rdata.rdb`` / ``Rdata.rdx`` pairs -- character, integer, double and
logical vectors, lists, pairlists, attributes, environments -- without R and
without the ``rdata`` package. Values come back as plain Python: ``list[str |
None]`` for character vectors, numpy arrays for numeric ones, ``dict`` for
named lists. Used for the ``janeaustenr`` artifact.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import pathlib
import struct
import zlib
from typing import Any

import numpy as np

__all__ = ["RObject", "read_lazyload_db", "unserialize"]

_NILVALUE, _REF, _GLOBALENV, _UNBOUND, _MISSINGARG, _BASENAMESPACE = 254, 255, 253, 252, 251, 250
_NAMESPACE, _PACKAGE, _PERSIST, _EMPTYENV, _BASEENV = 249, 248, 247, 242, 241
_ATTRLANG, _ATTRLIST, _ALTREP = 240, 239, 238


class RObject:
  """An R value with attributes that has no plainer Python form."""

  def __init__(self, rtype: int, value: Any, attributes: dict | None = None):
    self.rtype, self.value, self.attributes = rtype, value, attributes or {}

  def __repr__(self) -> str:
    return f"RObject(type={self.rtype}, value={self.value!r:.60}, attrs={list(self.attributes)})"


class _Reader:
  """Recursive-descent reader over one serialized stream."""

  def __init__(self, data: bytes):
    self.b, self.i, self.refs = data, 0, []

  def _int(self) -> int:
    (v,) = struct.unpack_from(">i", self.b, self.i)
    self.i += 4
    return v

  def _ints(self, n: int) -> np.ndarray:
    v = np.frombuffer(self.b, ">i4", n, self.i).astype(np.int32)
    self.i += 4 * n
    return v

  def _doubles(self, n: int) -> np.ndarray:
    v = np.frombuffer(self.b, ">f8", n, self.i).astype(np.float64)
    self.i += 8 * n
    return v

  def _length(self) -> int:
    n = self._int()
    if n == -1:  # long vector
      hi, lo = self._int(), self._int()
      n = (hi << 32) + lo
    return n

  def header(self) -> None:
    if self.b[:2] != b"X\n":
      raise ValueError("Not an R XDR serialization stream (expected 'X\\n').")
    self.i = 2
    version = self._int()
    self._int()
    self._int()
    if version == 3:
      n = self._int()  # length of the native encoding name
      self.i += n
    elif version != 2:
      raise ValueError(f"Unsupported R serialization version {version}.")

  def _attributes(self, has_attr: bool) -> dict:
    if not has_attr:
      return {}
    a = self.item()
    return a if isinstance(a, dict) else {"": a}

  def _pairlist(self, flags: int) -> dict:
    """Read a pairlist into a dict (tag -> value); untagged items get their index."""
    out: dict = {}
    k = 0
    while True:
      has_attr, has_tag = flags & (1 << 9), flags & (1 << 10)
      if has_attr:
        self.item()
      tag = self.item() if has_tag else None
      out[tag if isinstance(tag, str) else k] = self.item()
      k += 1
      flags = self._int()
      if flags & 0xFF != 2:  # cdr is not another LISTSXP cell
        self.i -= 4
        rest = self.item()
        if isinstance(rest, dict):
          out.update(rest)
        return out

  def item(self) -> Any:
    flags = self._int()
    t = flags & 0xFF
    has_attr = bool(flags & (1 << 9))
    if t == _NILVALUE:
      return None
    if t in (_GLOBALENV, _UNBOUND, _MISSINGARG, _BASENAMESPACE, _EMPTYENV, _BASEENV):
      return RObject(t, None)
    if t == _REF:
      idx = flags >> 8
      if idx == 0:
        idx = self._int()
      return self.refs[idx - 1]
    if t in (_NAMESPACE, _PACKAGE, _PERSIST):
      self._int()
      names = [self.item() for _ in range(self._int())]
      obj = RObject(t, names)
      self.refs.append(obj)
      return obj
    if t == 1:  # SYMSXP
      name = self.item()
      self.refs.append(name)
      return name
    if t in (2, _ATTRLIST, 6, _ATTRLANG, 5, 3):  # pairlist-like: LIST, LANG, PROM, CLO
      return self._pairlist(flags if t in (2, 6, 5, 3) else (flags & ~0xFF) | 2)
    if t == 4:  # ENVSXP
      obj = RObject(4, None)
      self.refs.append(obj)
      self._int()  # locked
      enclos, frame, hashtab, attrib = self.item(), self.item(), self.item(), self.item()
      del enclos
      env = dict(frame or {})
      if isinstance(hashtab, RObject) and isinstance(hashtab.value, list):
        for bucket in hashtab.value:
          if isinstance(bucket, dict):
            env.update(bucket)
      obj.value, obj.attributes = env, attrib or {}
      return obj
    if t == 9:  # CHARSXP
      n = self._int()
      if n == -1:
        return None
      s = self.b[self.i : self.i + n]
      self.i += n
      return s.decode("latin-1" if flags & (1 << 14) else "utf-8", errors="replace")
    if t in (10, 13):  # LGLSXP, INTSXP
      value: Any = self._ints(self._length())
    elif t == 14:  # REALSXP
      value = self._doubles(self._length())
    elif t == 15:  # CPLXSXP
      d = self._doubles(2 * self._length())
      value = d[0::2] + 1j * d[1::2]
    elif t == 24:  # RAWSXP
      n = self._length()
      value = self.b[self.i : self.i + n]
      self.i += n
    elif t == 16:  # STRSXP
      value = [self.item() for _ in range(self._length())]
    elif t in (19, 20):  # VECSXP, EXPRSXP
      value = [self.item() for _ in range(self._length())]
    elif t == _ALTREP:
      info, state, attr = self.item(), self.item(), self.item()
      cls = info.get(0) if isinstance(info, dict) else None
      if cls == "compact_intseq":
        n, start, step = (int(v) for v in state)
        value = np.arange(start, start + n * step, step, dtype=np.int32)
      elif cls == "compact_realseq":
        n, start, step = state
        value = start + step * np.arange(int(n))
      elif isinstance(cls, str) and cls.startswith("wrap_"):
        value = state.get(0) if isinstance(state, dict) else state[0]
      elif cls == "deferred_string":
        arg = state.get(0) if isinstance(state, dict) else state
        value = [str(v) for v in np.asarray(arg)]
      else:
        raise ValueError(f"Unsupported ALTREP class {cls!r}.")
      return _with_attrs(value, attr if isinstance(attr, dict) else {})
    elif t == 25:  # S4SXP
      return RObject(25, None, self._attributes(has_attr))
    else:
      raise ValueError(f"Unsupported R SEXP type {t} at byte {self.i - 4}.")
    return _with_attrs(value, self._attributes(has_attr))


def _with_attrs(value: Any, attrs: dict) -> Any:
  names = attrs.get("names")
  if isinstance(value, list) and names is not None and len(names) == len(value):
    return dict(zip(names, value))
  if not attrs or set(attrs) <= {"names"}:
    return value
  return RObject(-1, value, attrs)


def unserialize(data: bytes) -> Any:
  """Unserialize one R object (XDR format) from ``data``."""
  r = _Reader(data)
  r.header()
  return r.item()


def _decompress(blob: bytes) -> bytes:
  """Decompress one lazy-load record: 4-byte length then zlib, or a typed 5-byte header."""
  if blob[4:5] in (b"Z", b"2", b"X", b"0") and not blob[4:6] == b"x\x9c":
    kind, body = blob[4:5], blob[5:]
    return {b"Z": zlib.decompress, b"2": bz2.decompress, b"X": lzma.decompress, b"0": lambda x: x}[
      kind
    ](body)
  return zlib.decompress(blob[4:])


def read_lazyload_db(base: str | pathlib.Path, names: list[str] | None = None) -> dict[str, Any]:
  """Read objects from an R lazy-load database ``<base>.rdb`` / ``<base>.rdx``.

  Args:
    base: path without extension, e.g. ``.../janeaustenr/data/Rdata``.
    names: objects to read (default: all).
  """
  base = pathlib.Path(base)
  raw = base.with_suffix(".rdx").read_bytes()
  index = unserialize(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else zlib.decompress(raw[4:]))
  variables = index["variables"]
  wanted = list(variables) if names is None else names
  missing = [n for n in wanted if n not in variables]
  if missing:
    raise KeyError(f"{base}.rdb has no objects {missing}; it has {sorted(variables)}.")
  out = {}
  with open(base.with_suffix(".rdb"), "rb") as f:
    for n in wanted:
      offset, length = (int(v) for v in variables[n])
      f.seek(offset)
      out[n] = unserialize(_decompress(f.read(length)))
  return out

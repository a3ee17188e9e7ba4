"""Minimal GGUF reader with numpy dequantisation (no dependency on the ``gguf`` package).

GGUF (v2/v3) layout: magic ``GGUF``, u32 version, u64 tensor count, u64 metadata count,
metadata key/values, tensor infos (name, dims ``ne0..ne{n-1}``, ggml type, offset), padding
to ``general.alignment`` (default 32), then tensor data. ``ne0`` is the contiguous axis, so
the numpy shape is the reversed dims; quantisation blocks run along ``ne0``.

Supported tensor types: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q6_K. Anything else
raises ``NotImplementedError`` naming the type.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from typing import Any

import numpy as np

GGML_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
              10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 30: "BF16"}
# (elements per block, bytes per block)
_BLOCK = {"F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "Q4_0": (32, 18), "Q4_1": (32, 20),
          "Q5_0": (32, 22), "Q5_1": (32, 24), "Q8_0": (32, 34), "Q6_K": (256, 210)}

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # numpy order (reversed GGUF dims)
    ggml_type: str
    offset: int  # absolute file offset


class GGUFFile:
    """A parsed GGUF file: ``metadata`` dict and lazily dequantised tensors.

    >>> g = GGUFFile(path); w = g.tensor("blk.0.attn_q.weight")  # float32 numpy
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._buf = np.memmap(self.path, dtype=np.uint8, mode="r")
        if bytes(self._buf[:4]) != b"GGUF":
            raise ValueError(f"{self.path} is not a GGUF file (bad magic {bytes(self._buf[:4])!r}).")
        self._off = 4
        self.version = self._read("<I")
        if self.version not in (2, 3):
            raise ValueError(f"{self.path}: unsupported GGUF version {self.version} (need 2 or 3).")
        n_tensors, n_kv = self._read("<Q"), self._read("<Q")
        self.metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = self._read_str()
            self.metadata[key] = self._read_value(self._read("<I"))
        infos = []
        for _ in range(n_tensors):
            name = self._read_str()
            ndim = self._read("<I")
            dims = [self._read("<Q") for _ in range(ndim)]
            t = self._read("<I")
            infos.append((name, tuple(reversed(dims)), GGML_TYPES.get(t, f"type{t}"), self._read("<Q")))
        align = int(self.metadata.get("general.alignment", 32))
        data_start = -(-self._off // align) * align
        self.tensors = {n: TensorInfo(n, s, t, data_start + o) for n, s, t, o in infos}

    # -- parsing helpers
    def _read(self, fmt: str):
        size = struct.calcsize(fmt)
        (v,) = struct.unpack(fmt, bytes(self._buf[self._off:self._off + size]))
        self._off += size
        return v

    def _read_str(self) -> str:
        n = self._read("<Q")
        s = bytes(self._buf[self._off:self._off + n]).decode("utf-8", errors="surrogateescape")
        self._off += n
        return s

    def _read_value(self, t: int):
        if t == 8:
            return self._read_str()
        if t == 9:
            et, n = self._read("<I"), self._read("<Q")
            if et in _SCALAR and et != 7:  # fast path for numeric arrays
                dt = np.dtype(_SCALAR[et])
                arr = np.frombuffer(self._buf, dt, n, self._off).copy()
                self._off += n * dt.itemsize
                return arr.tolist()
            return [self._read_value(et) for _ in range(n)]
        if t in _SCALAR:
            return self._read(_SCALAR[t])
        raise ValueError(f"{self.path}: unknown GGUF metadata value type {t}.")

    # -- tensors
    def raw(self, name: str) -> tuple[np.ndarray, TensorInfo]:
        """The tensor's raw bytes (uint8 view of the file) and its info."""
        info = self._info(name)
        if info.ggml_type not in _BLOCK:
            raise NotImplementedError(
                f"{self.path}: tensor {name!r} uses ggml type {info.ggml_type}, which this reader "
                f"does not dequantise (supported: {', '.join(_BLOCK)}).")
        per, nbytes = _BLOCK[info.ggml_type]
        n = int(np.prod(info.shape))
        if n % per:
            raise ValueError(f"{name}: {n} elements is not a multiple of the {info.ggml_type} block ({per}).")
        return self._buf[info.offset:info.offset + n // per * nbytes], info

    def tensor(self, name: str) -> np.ndarray:
        """Dequantised float32 tensor in numpy order (e.g. ``(out, in)`` for weight matrices)."""
        data, info = self.raw(name)
        return dequantize(data, info.ggml_type).reshape(info.shape)

    def _info(self, name: str) -> TensorInfo:
        if name not in self.tensors:
            raise KeyError(f"{self.path} has no tensor {name!r}; e.g. {list(self.tensors)[:5]}.")
        return self.tensors[name]


def _f16(block: np.ndarray, lo: int) -> np.ndarray:
    return block[:, lo:lo + 2].copy().view(np.float16).astype(np.float32)


def dequantize(data: np.ndarray, ggml_type: str) -> np.ndarray:
    """Dequantise raw GGUF bytes of ``ggml_type`` to a flat float32 array (ggml reference math)."""
    data = np.asarray(data, np.uint8)
    if ggml_type == "F32":
        return data.view(np.float32).copy()
    if ggml_type == "F16":
        return data.view(np.float16).astype(np.float32)
    if ggml_type == "BF16":
        return (data.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    if ggml_type not in _BLOCK:
        raise NotImplementedError(f"ggml type {ggml_type} is not supported (supported: {', '.join(_BLOCK)}).")
    per, nbytes = _BLOCK[ggml_type]
    b = data.reshape(-1, nbytes)
    if ggml_type == "Q8_0":
        return (_f16(b, 0) * b[:, 2:].view(np.int8).astype(np.float32)).reshape(-1)
    if ggml_type == "Q6_K":
        return _dequant_q6_k(b)
    d = _f16(b, 0)
    if ggml_type in ("Q4_0", "Q5_0"):
        m, qh_at, qs_at = None, 2, (2 if ggml_type == "Q4_0" else 6)
    else:  # Q4_1 / Q5_1
        m, qh_at, qs_at = _f16(b, 2), 4, (4 if ggml_type == "Q4_1" else 8)
    qs = b[:, qs_at:qs_at + 16]
    # element j < 16 is the low nibble of qs[j]; element j + 16 is its high nibble
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int32)
    if ggml_type in ("Q5_0", "Q5_1"):
        qh = b[:, qh_at:qh_at + 4].copy().view("<u4").astype(np.uint32)  # (n, 1)
        bits = (qh >> np.arange(32, dtype=np.uint32)) & 1  # bit j -> 5th bit of element j
        q = q | (bits.astype(np.int32) << 4)
    if ggml_type == "Q4_0":
        q = q - 8
    elif ggml_type == "Q5_0":
        q = q - 16
    y = d * q.astype(np.float32)
    if m is not None:
        y = y + m
    return y.reshape(-1)


def _dequant_q6_k(b: np.ndarray) -> np.ndarray:
    """Q6_K super-blocks of 256: ql[128], qh[64], int8 scales[16], f16 d."""
    n = b.shape[0]
    ql = b[:, :128].reshape(n, 2, 64).astype(np.int32)
    qh = b[:, 128:192].reshape(n, 2, 32).astype(np.int32)
    sc = b[:, 192:208].view(np.int8).reshape(n, 2, 8).astype(np.float32)
    d = b[:, 208:210].copy().view(np.float16).astype(np.float32).reshape(n, 1, 1)
    q1 = (ql[..., :32] & 0xF) | (((qh >> 0) & 3) << 4)
    q2 = (ql[..., 32:] & 0xF) | (((qh >> 2) & 3) << 4)
    q3 = (ql[..., :32] >> 4) | (((qh >> 4) & 3) << 4)
    q4 = (ql[..., 32:] >> 4) | (((qh >> 6) & 3) << 4)
    q = np.stack([q1, q2, q3, q4], axis=2).astype(np.float32) - 32.0  # (n, 2 halves, 4, 32)
    # scale index within a half: is = l // 16 (+0, +2, +4, +6 for q1..q4)
    scale = sc.reshape(n, 2, 4, 2)  # [half, group g, l // 16] -> sc[half*8 + 2g + l//16]
    y = q.reshape(n, 2, 4, 2, 16) * scale[..., None]
    return (d[..., None, None] * y).reshape(-1)

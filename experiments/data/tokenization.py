"""Tokenizers built with Hugging Face ``tokenizers``, from a ``tokenizer.json`` or a GGUF vocabulary.

* :meth:`Tokenizer.from_file`: a model's own ``tokenizer.json`` (MiniLM's WordPiece:
  BertNormalizer, BertPreTokenizer, WordPiece, ``[CLS] A [SEP] (B [SEP])`` template).
* :meth:`Tokenizer.from_gguf`: the byte-level BPE of a llama.cpp GGUF, assembled from
  ``tokenizer.ggml.tokens`` / ``merges`` / ``token_type`` with the model family's own
  pre-tokenizer, as its Hugging Face ``tokenizer.json`` defines it (keyed by
  ``tokenizer.ggml.pre``): SmolLM2 (``smollm``) splits every digit, then GPT-2's byte-level
  regex; Qwen2 (``qwen2``) NFC-normalises and splits with its own regex.

:class:`Tokenizer` is a thin adapter: ``encode(text) -> ids``, ``batch_encode(texts,
max_len) -> (ids, mask)`` (truncated "longest first" and right-padded by the library),
``decode(ids)``, and for GGUF models ``chat(messages)`` renders the file's Jinja chat template.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

# llama.cpp token types (gguf.TokenType): 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
_CONTROL, _USER_DEFINED = 3, 4

# Pre-tokenizer regexes from the models' Hugging Face tokenizer.json files (also in llama.cpp's
# llama-vocab.cpp under the same ``tokenizer.ggml.pre`` names).
QWEN2_PATTERN = (
  r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
  r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _pre_tokenizer(pre: str):
  """(normalizer, pre_tokenizer) of a GGUF ``tokenizer.ggml.pre`` family."""
  from tokenizers import Regex, normalizers, pre_tokenizers

  if pre == "qwen2":
    return normalizers.NFC(), pre_tokenizers.Sequence(
      [
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
      ]
    )
  if pre == "smollm":
    return None, pre_tokenizers.Sequence(
      [
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
      ]
    )
  if pre in ("gpt2", "default"):
    return None, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  raise NotImplementedError(
    f"tokenizer.ggml.pre={pre!r} is not wired up; supported: qwen2, smollm, gpt2. Add its "
    "pre-tokenizer (from the model's tokenizer.json) to experiments.data.tokenization._pre_tokenizer."
  )


class Tokenizer:
  """A ``tokenizers.Tokenizer`` with the few conveniences the experiments use.

  Attributes: ``hf`` (the library tokenizer), ``bos_id``/``eos_id``/``pad_id`` (or None),
  ``chat_template`` (Jinja source, GGUF models only).
  """

  def __init__(
    self,
    hf,
    *,
    bos_id: int | None = None,
    eos_id: int | None = None,
    pad_id: int | None = None,
    chat_template: str | None = None,
  ):
    hf.no_padding()
    hf.no_truncation()
    self.hf = hf
    self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id
    self.chat_template = chat_template

  # -- construction
  @classmethod
  def from_file(cls, path: str | os.PathLike) -> "Tokenizer":
    """From a Hugging Face ``tokenizer.json`` (e.g. MiniLM's)."""
    from tokenizers import Tokenizer as HF

    if not os.path.isfile(path):
      raise FileNotFoundError(
        f"no tokenizer.json at {path}; pass the model directory's tokenizer.json "
        "(MiniLM: python -m experiments.data.fetch minilm)."
      )
    hf = HF.from_file(os.fspath(path))
    spec = json.loads(hf.to_str())
    pad = (spec.get("padding") or {}).get("pad_id")
    if pad is None:
      pad = hf.token_to_id("[PAD]")
    return cls(hf, pad_id=pad, bos_id=hf.token_to_id("[CLS]"), eos_id=hf.token_to_id("[SEP]"))

  @classmethod
  def from_gguf(cls, gguf: Any) -> "Tokenizer":
    """From an opened GGUF file's byte-level BPE vocabulary: anything with the file's
    ``metadata`` and ``path``, e.g. an :class:`experiments.models.checkpoints.GGUF`."""
    return cls.from_gguf_metadata(gguf.metadata, where=gguf.path)

  @classmethod
  def from_gguf_metadata(cls, md: Mapping[str, Any], where: str = "GGUF") -> "Tokenizer":
    from tokenizers import AddedToken, Tokenizer as HF, decoders, models

    kind = md.get("tokenizer.ggml.model")
    if kind != "gpt2":
      raise NotImplementedError(
        f"{where}: tokenizer.ggml.model={kind!r}; only byte-level BPE ('gpt2') "
        "vocabularies are supported."
      )
    tokens = list(md["tokenizer.ggml.tokens"])
    types = list(md.get("tokenizer.ggml.token_type", [1] * len(tokens)))
    merges = [tuple(m.split(" ", 1)) for m in md["tokenizer.ggml.merges"]]
    bpe = models.BPE(
      vocab={t: i for i, t in enumerate(tokens)}, merges=merges, fuse_unk=False, byte_fallback=False
    )
    hf = HF(bpe)
    norm, pre = _pre_tokenizer(md.get("tokenizer.ggml.pre", "gpt2"))
    if norm is not None:
      hf.normalizer = norm
    hf.pre_tokenizer = pre
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens(
      [
        AddedToken(t, special=True, normalized=False)
        for t, ty in zip(tokens, types)
        if ty == _CONTROL
      ]
    )
    hf.add_tokens(
      [
        AddedToken(t, special=False, normalized=False)
        for t, ty in zip(tokens, types)
        if ty == _USER_DEFINED
      ]
    )
    get = lambda k: None if md.get(k) is None else int(md[k])  # noqa: E731
    return cls(
      hf,
      bos_id=get("tokenizer.ggml.bos_token_id"),
      eos_id=get("tokenizer.ggml.eos_token_id"),
      pad_id=get("tokenizer.ggml.padding_token_id"),
      chat_template=md.get("tokenizer.chat_template"),
    )

  # -- vocabulary
  @property
  def vocab_size(self) -> int:
    return self.hf.get_vocab_size(with_added_tokens=True)

  def __len__(self) -> int:
    return self.vocab_size

  def token_to_id(self, token: str) -> int | None:
    return self.hf.token_to_id(token)

  def id_to_token(self, i: int) -> str | None:
    return self.hf.id_to_token(int(i))

  # -- encoding
  def encode(
    self, text: str, pair: str | None = None, add_special_tokens: bool = True
  ) -> list[int]:
    """Token ids of ``text`` (and ``pair``), with the tokenizer's template (MiniLM:
    ``[CLS] .. [SEP]``; GGUF BPE: none). Special tokens written in the text stay single ids."""
    return self.hf.encode(text, pair, add_special_tokens=add_special_tokens).ids

  def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
    return [e.ids for e in self.hf.encode_batch(list(texts))]

  def batch_encode(
    self, texts: Sequence[str], max_len: int = 128, pairs: Sequence[str] | None = None
  ) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, attention_mask)``, int32 ``(len(texts), max_len)``: truncated longest-first
    (pairs) and right-padded with ``pad_id`` by the library."""
    if self.pad_id is None:
      raise ValueError("this tokenizer has no padding token; use encode() and pad yourself.")
    self.hf.enable_truncation(max_len, strategy="longest_first")
    self.hf.enable_padding(
      length=max_len, pad_id=self.pad_id, pad_token=self.hf.id_to_token(self.pad_id)
    )
    try:
      inputs = list(texts) if pairs is None else list(zip(texts, pairs))
      enc = self.hf.encode_batch(inputs)
    except Exception as e:
      if "truncat" in str(e).lower():
        raise ValueError(f"max_len={max_len} leaves no room for the special tokens ({e}).") from e
      raise
    finally:
      self.hf.no_padding()
      self.hf.no_truncation()
    ids = np.asarray([e.ids for e in enc], np.int32).reshape(len(inputs), max_len)
    mask = np.asarray([e.attention_mask for e in enc], np.int32).reshape(len(inputs), max_len)
    return ids, mask

  def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
    return self.hf.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

  # -- chat
  def chat(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True) -> str:
    """The prompt text of ``messages`` (``[{'role', 'content'}]``) under the GGUF's Jinja
    chat template, rendered by ``jinja2`` as Hugging Face does (sandboxed, trim_blocks)."""
    if not self.chat_template:
      raise ValueError(
        "this tokenizer has no chat template (tokenizer.chat_template is not in the GGUF)."
      )
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(msg):
      raise ValueError(f"chat template: {msg}")

    env = ImmutableSandboxedEnvironment(
      trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False, **kw)
    env.globals["raise_exception"] = raise_exception
    tok = lambda i: None if i is None else self.hf.id_to_token(i)  # noqa: E731
    return env.from_string(self.chat_template).render(
      messages=list(messages),
      add_generation_prompt=add_generation_prompt,
      bos_token=tok(self.bos_id) or "",
      eos_token=tok(self.eos_id) or "",
    )

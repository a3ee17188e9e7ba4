"""A pure-Python BERT WordPiece tokenizer that reads a HuggingFace ``tokenizer.json``.

Implements what BERT-style ``tokenizer.json`` files specify -- the
``BertNormalizer`` (clean control characters, pad CJK characters, lowercase,
strip accents), the ``BertPreTokenizer`` (split on whitespace and isolate
punctuation), greedy longest-match-first ``WordPiece`` with ``##``
continuations, and the ``[CLS] A [SEP] (B [SEP])`` template -- with no
dependency on the ``tokenizers`` package. Used with the MiniLM artifact::

    tok = WordPiece.from_file(fetch.artifact_file("minilm", "tokenizer"))
    ids, mask = tok.batch_encode(["a gorgeous film"], max_len=64)
"""

from __future__ import annotations

import dataclasses
import json
import os
import unicodedata
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["WordPiece"]


def _is_whitespace(c: str) -> bool:
  return c in " \t\n\r" or unicodedata.category(c) == "Zs"


def _is_control(c: str) -> bool:
  if c in "\t\n\r":
    return False
  return unicodedata.category(c) in ("Cc", "Cf", "Cn", "Co", "Cs")


def _is_punctuation(c: str) -> bool:
  o = ord(c)
  if 33 <= o <= 47 or 58 <= o <= 64 or 91 <= o <= 96 or 123 <= o <= 126:
    return True
  return unicodedata.category(c).startswith("P")


def _is_cjk(o: int) -> bool:
  return (0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x2A6DF
          or 0x2A700 <= o <= 0x2B73F or 0x2B740 <= o <= 0x2B81F or 0x2B820 <= o <= 0x2CEAF
          or 0xF900 <= o <= 0xFAFF or 0x2F800 <= o <= 0x2FA1F)


def _longest_first(n_a: int, n_b: int, budget: int) -> tuple[int, int]:
  """Lengths after HuggingFace's ``LongestFirst`` pair truncation to ``budget``."""
  swap = n_a > n_b
  short, long_ = (n_b, n_a) if swap else (n_a, n_b)
  long_ = short if short > budget else max(short, budget - short)
  if short + long_ > budget:
    short = budget // 2
    long_ = short + budget % 2
  return (long_, short) if swap else (short, long_)


@dataclasses.dataclass
class WordPiece:
  """BERT WordPiece tokenizer.

  Attributes:
    vocab: token -> id.
    lowercase: lowercase the input (uncased models).
    strip_accents: remove combining marks after NFD; ``None`` follows
      ``lowercase`` (the HuggingFace convention).
    clean_text: drop control characters, map whitespace to spaces.
    handle_chinese_chars: put spaces around CJK ideographs.
    unk_token, cls_token, sep_token, pad_token: special tokens.
    prefix: continuation prefix (``##``).
    max_input_chars_per_word: longer words become ``unk_token``.
  """

  vocab: Mapping[str, int]
  lowercase: bool = True
  strip_accents: bool | None = None
  clean_text: bool = True
  handle_chinese_chars: bool = True
  unk_token: str = "[UNK]"
  cls_token: str = "[CLS]"
  sep_token: str = "[SEP]"
  pad_token: str = "[PAD]"
  prefix: str = "##"
  max_input_chars_per_word: int = 100

  def __post_init__(self):
    for t in (self.unk_token, self.cls_token, self.sep_token, self.pad_token):
      if t not in self.vocab:
        raise ValueError(f"Special token {t!r} is not in the vocabulary.")
    self.inv_vocab = {i: t for t, i in self.vocab.items()}
    self._cache: dict[str, list[int]] = {}

  @classmethod
  def from_file(cls, path: str | os.PathLike) -> "WordPiece":
    """Build from a HuggingFace ``tokenizer.json`` with a WordPiece model."""
    with open(path, encoding="utf-8") as f:
      spec = json.load(f)
    model = spec.get("model", {})
    if model.get("type") != "WordPiece":
      raise ValueError(f"{path}: model type {model.get('type')!r} is not WordPiece.")
    norm = spec.get("normalizer") or {}
    if norm and norm.get("type") != "BertNormalizer":
      raise ValueError(f"{path}: normalizer {norm.get('type')!r} is not BertNormalizer.")
    specials = {t["content"] for t in spec.get("added_tokens", [])}
    pick = lambda name, default: name if name in specials or name in model["vocab"] else default
    return cls(
        vocab=model["vocab"],
        lowercase=norm.get("lowercase", True),
        strip_accents=norm.get("strip_accents"),
        clean_text=norm.get("clean_text", True),
        handle_chinese_chars=norm.get("handle_chinese_chars", True),
        unk_token=model.get("unk_token", "[UNK]"),
        cls_token=pick("[CLS]", "[CLS]"), sep_token=pick("[SEP]", "[SEP]"),
        pad_token=pick("[PAD]", "[PAD]"),
        prefix=model.get("continuing_subword_prefix", "##"),
        max_input_chars_per_word=model.get("max_input_chars_per_word", 100),
    )

  @property
  def vocab_size(self) -> int:
    return len(self.vocab)

  @property
  def pad_id(self) -> int:
    return self.vocab[self.pad_token]

  @property
  def cls_id(self) -> int:
    return self.vocab[self.cls_token]

  @property
  def sep_id(self) -> int:
    return self.vocab[self.sep_token]

  # -- pipeline stages -------------------------------------------------------

  def normalize(self, text: str) -> str:
    """BertNormalizer."""
    if self.clean_text:
      text = "".join(" " if _is_whitespace(c) else c for c in text
                     if not (c == "\0" or c == "\ufffd" or _is_control(c)))
    if self.handle_chinese_chars:
      text = "".join(f" {c} " if _is_cjk(ord(c)) else c for c in text)
    if self.lowercase:
      text = text.lower()
    strip = self.lowercase if self.strip_accents is None else self.strip_accents
    if strip:
      text = "".join(c for c in unicodedata.normalize("NFD", text)
                     if unicodedata.category(c) != "Mn")
    return text

  @staticmethod
  def pre_tokenize(text: str) -> list[str]:
    """BertPreTokenizer: whitespace split, each punctuation character its own word."""
    words: list[str] = []
    cur: list[str] = []
    for c in text:
      if _is_whitespace(c):
        if cur:
          words.append("".join(cur))
          cur = []
      elif _is_punctuation(c):
        if cur:
          words.append("".join(cur))
          cur = []
        words.append(c)
      else:
        cur.append(c)
    if cur:
      words.append("".join(cur))
    return words

  def word_ids(self, word: str) -> list[int]:
    """Greedy longest-match-first WordPiece ids of one pre-tokenized word."""
    hit = self._cache.get(word)
    if hit is not None:
      return hit
    ids: list[int] = []
    if len(word) > self.max_input_chars_per_word:
      ids = [self.vocab[self.unk_token]]
    else:
      start = 0
      while start < len(word):
        end = len(word)
        found = None
        while start < end:
          piece = word[start:end] if start == 0 else self.prefix + word[start:end]
          found = self.vocab.get(piece)
          if found is not None:
            break
          end -= 1
        if found is None:
          ids = [self.vocab[self.unk_token]]
          break
        ids.append(found)
        start = end
    if len(self._cache) < 200_000:
      self._cache[word] = ids
    return ids

  # -- public API ------------------------------------------------------------

  def tokenize(self, text: str) -> list[str]:
    """Word pieces of ``text`` (no special tokens)."""
    return [self.inv_vocab[i] for i in self.encode_plain(text)]

  def encode_plain(self, text: str) -> list[int]:
    """Ids of ``text`` without special tokens, truncation or padding."""
    return [i for w in self.pre_tokenize(self.normalize(text)) for i in self.word_ids(w)]

  def encode(self, text: str, pair: str | None = None,
             max_len: int | None = None) -> tuple[list[int], list[int]]:
    """``[CLS] text [SEP] (pair [SEP])`` ids and token-type ids, truncated to ``max_len``.

    Pairs are truncated "longest first" exactly as HuggingFace ``tokenizers``
    does (the shorter keeps ``min(len, budget // 2)`` or more if room remains).
    """
    a = self.encode_plain(text)
    b = self.encode_plain(pair) if pair is not None else None
    if max_len is not None:
      budget = max_len - (3 if b is not None else 2)
      if budget < 0:
        raise ValueError(f"max_len={max_len} leaves no room for special tokens.")
      if b is None:
        a = a[:budget]
      elif len(a) + len(b) > budget:
        na, nb = _longest_first(len(a), len(b), budget)
        a, b = a[:na], b[:nb]
    ids = [self.cls_id, *a, self.sep_id]
    types = [0] * len(ids)
    if b is not None:
      ids += [*b, self.sep_id]
      types += [1] * (len(b) + 1)
    return ids, types

  def batch_encode(self, texts: Sequence[str], max_len: int = 128,
                   pairs: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Encode, truncate and right-pad to ``max_len``.

    Returns:
      ``(ids, attention_mask)``, both int32 of shape ``(len(texts), max_len)``.
      (Token-type ids are all zero for single sentences; use :meth:`encode`
      for pairs' type ids.)
    """
    ids = np.full((len(texts), max_len), self.pad_id, dtype=np.int32)
    mask = np.zeros((len(texts), max_len), dtype=np.int32)
    for r, t in enumerate(texts):
      row, _ = self.encode(t, pairs[r] if pairs is not None else None, max_len)
      ids[r, :len(row)] = row
      mask[r, :len(row)] = 1
    return ids, mask

  def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
    """Join pieces back into text (``##`` continuations glued, punctuation spacing cleaned)."""
    specials = {self.cls_token, self.sep_token, self.pad_token}
    out = ""
    for i in ids:
      t = self.inv_vocab[int(i)]
      if skip_special and t in specials:
        continue
      if t.startswith(self.prefix):
        out += t[len(self.prefix):]
      else:
        out += (" " if out else "") + t
    for p in (" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"):
      out = out.replace(p, p.lstrip() if p != " ' " else "'")
    return out

"""Character vocabularies and LEAF-style next-character examples.

LEAF's Shakespeare task (Caldas et al., 2018) predicts the next character from
the previous 80 using a fixed 80-character vocabulary; :data:`LEAF_CHARS` is
that vocabulary, in LEAF's order, so ids match LEAF's.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["LEAF_CHARS", "CharVocab", "normalize", "next_char_examples", "leaf_vocab"]

#: LEAF's ``ALL_LETTERS``: newline, space, punctuation, digits, A-Z, a-z, '}'.
LEAF_CHARS = "\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz}"
assert len(LEAF_CHARS) == 80

# Typographic characters folded to the ASCII the vocabulary has; "_" (the
# Gutenberg italics marker) is dropped; "\r" and DOS end-of-file (^Z) removed.
_FOLD = str.maketrans(
  {
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2014": "-",
    "\u2013": "-",
    "\u00a0": " ",
    "\t": " ",
    "\r": None,
    "\x1a": None,
    "_": None,
    "`": "'",
    "\u00e6": "ae",
    "\u00c6": "AE",
    "\u0153": "oe",
    "\u00e9": "e",
    "\u00e8": "e",
    "\u00ea": "e",
    "\u00e0": "a",
    "\u00e2": "a",
    "\u00ef": "i",
    "\u00f4": "o",
  }
)


def normalize(text: str) -> str:
  """Fold typographic quotes/dashes and a few accents to ASCII, drop ``_`` and ``\\r``."""
  return text.translate(_FOLD)


@dataclasses.dataclass(frozen=True)
class CharVocab:
  """A fixed character vocabulary.

  Attributes:
    chars: the characters; a character's id is its position.
    oov_char: character whose id unknown characters get (must be in ``chars``).
  """

  chars: str = LEAF_CHARS
  oov_char: str = " "

  def __post_init__(self):
    if len(set(self.chars)) != len(self.chars):
      raise ValueError("CharVocab.chars has duplicate characters.")
    if self.oov_char not in self.chars:
      raise ValueError(f"oov_char {self.oov_char!r} is not in the vocabulary.")

  @property
  def size(self) -> int:
    return len(self.chars)

  def _table(self) -> np.ndarray:
    table = np.full(
      0x110000 if any(ord(c) > 255 for c in self.chars) else 256,
      self.chars.index(self.oov_char),
      dtype=np.int32,
    )
    for i, c in enumerate(self.chars):
      table[ord(c)] = i
    return table

  def encode(self, text: str) -> np.ndarray:
    """Ids (int32) of ``text``; characters outside the vocabulary get ``oov_char``'s id."""
    table = self._table()
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    out = np.full(codes.shape, self.chars.index(self.oov_char), dtype=np.int32)
    inside = codes < len(table)
    out[inside] = table[codes[inside]]
    return out

  def oov_fraction(self, text: str) -> float:
    """Fraction of characters of ``text`` outside the vocabulary."""
    if not text:
      return 0.0
    known = set(self.chars)
    return sum(c not in known for c in text) / len(text)

  def decode(self, ids) -> str:
    """Inverse of :meth:`encode` (up to out-of-vocabulary characters)."""
    return "".join(self.chars[int(i)] for i in np.asarray(ids).reshape(-1))


def leaf_vocab() -> CharVocab:
  """LEAF's 80-character vocabulary; unknown characters map to space."""
  return CharVocab(LEAF_CHARS, " ")


def next_char_examples(
  ids: np.ndarray, seq_len: int = 80, stride: int = 1, targets: str = "next"
) -> dict[str, np.ndarray]:
  """Sliding windows over a character-id stream.

  Window ``i`` starts at ``i * stride``. The arrays are read-only strided views
  of ``ids`` (no copy), so stride 1 over millions of characters is cheap;
  indexing a batch copies only that batch.

  Args:
    ids: 1-D int array of character ids.
    seq_len: input length ``L``.
    stride: step between window starts (LEAF uses 1).
    targets: ``"next"`` -> ``{"x": (n, L), "y": (n,)}`` with ``y`` the
      character after ``x`` (LEAF); ``"seq"`` -> ``{"x", "y"}`` with ``y`` of
      shape ``(n, L)``, ``x`` shifted by one (language modelling); ``"both"`` ->
      ``{"x", "y", "y_seq"}``.

  Returns:
    Dict of int32 arrays with a shared leading dimension
    ``n = max(0, (len(ids) - L - 1) // stride + 1)``.
  """
  if seq_len < 1 or stride < 1:
    raise ValueError(f"seq_len and stride must be >= 1, got {seq_len}, {stride}.")
  if targets not in ("next", "seq", "both"):
    raise ValueError(f"targets must be 'next', 'seq' or 'both', got {targets!r}.")
  ids = np.ascontiguousarray(ids, dtype=np.int32)
  if len(ids) < seq_len + 1:
    w = np.zeros((0, seq_len + 1), dtype=np.int32)
  else:
    w = np.lib.stride_tricks.sliding_window_view(ids, seq_len + 1)[::stride]
  out = {"x": w[:, :-1]}
  if targets == "next":
    out["y"] = w[:, -1]
  elif targets == "seq":
    out["y"] = w[:, 1:]
  else:
    out["y"] = w[:, -1]
    out["y_seq"] = w[:, 1:]
  return out

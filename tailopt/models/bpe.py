"""GPT-2-style byte-level BPE tokenizer built from GGUF metadata (``tokenizer.ggml.*``).

Pipeline (matching HF ``tokenizers`` for SmolLM2, llama.cpp pre-tokenizer ``smollm``):

1. split out special (control) tokens such as ``<|im_start|>`` verbatim;
2. pre-tokenize: every digit is its own piece (``smollm``/``Digits(individual_digits)``;
   not done for plain ``gpt2``), then the GPT-2 regex
   ``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``;
3. map each piece's UTF-8 bytes to printable unicode (GPT-2 ``bytes_to_unicode``) and apply
   the ranked merges.

Uses the ``regex`` module for ``\\p{L}``/``\\p{N}`` when available, else an ``re``
approximation (letters = ``[^\\W\\d_]``, numbers = ``\\d``) that agrees on ordinary text.
"""

from __future__ import annotations

import functools
from typing import Iterable, Sequence

try:
    import regex as _re

    _PAT = _re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
    _DIGIT = _re.compile(r"\p{N}")
except ImportError:  # pragma: no cover - depends on the environment
    import re as _re

    _PAT = _re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")
    _DIGIT = _re.compile(r"\d")

CONTROL_TOKEN_TYPE = 3  # llama.cpp token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte


@functools.lru_cache(maxsize=None)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable-unicode-char map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class BPETokenizer:
    """Byte-level BPE: ``encode(text) -> ids``, ``decode(ids) -> text``."""

    def __init__(self, tokens: Sequence[str], merges: Iterable[str], special_tokens: Iterable[str] = (),
                 split_digits: bool = True, bos_id: int | None = None, eos_id: int | None = None):
        self.tokens = list(tokens)
        self.vocab = {t: i for i, t in enumerate(self.tokens)}
        self.ranks = {tuple(m.split(" ", 1)): i for i, m in enumerate(merges)}
        self.special = sorted(set(special_tokens), key=len, reverse=True)
        self.split_digits = split_digits
        self.bos_id, self.eos_id = bos_id, eos_id
        self._b2u = bytes_to_unicode()
        self._u2b = {u: b for b, u in self._b2u.items()}
        self._cache: dict[str, list[int]] = {}
        if self.special:
            self._special_re = _re.compile("(" + "|".join(_re.escape(s) for s in self.special) + ")")

    @classmethod
    def from_gguf(cls, path) -> "BPETokenizer":
        """Tokenizer of a GGUF file (reads only its metadata)."""
        from tailopt.models.gguf_reader import GGUFFile

        return cls.from_gguf_metadata(GGUFFile(path).metadata)

    @classmethod
    def from_gguf_metadata(cls, md: dict) -> "BPETokenizer":
        model = md.get("tokenizer.ggml.model")
        if model != "gpt2":
            raise NotImplementedError(f"tokenizer.ggml.model={model!r}; only byte-level BPE ('gpt2') is supported.")
        tokens = md["tokenizer.ggml.tokens"]
        types = md.get("tokenizer.ggml.token_type", [1] * len(tokens))
        special = [t for t, ty in zip(tokens, types) if ty == CONTROL_TOKEN_TYPE]
        pre = md.get("tokenizer.ggml.pre", "gpt2")
        return cls(tokens, md["tokenizer.ggml.merges"], special, split_digits=pre in ("smollm", "llama3", "qwen2"),
                   bos_id=md.get("tokenizer.ggml.bos_token_id"), eos_id=md.get("tokenizer.ggml.eos_token_id"))

    def __len__(self) -> int:
        return len(self.tokens)

    def _bpe(self, piece: str) -> list[int]:
        if piece in self._cache:
            return self._cache[piece]
        word = [self._b2u[b] for b in piece.encode("utf-8")]
        while len(word) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 62), i) for i, (a, b) in enumerate(zip(word, word[1:]))]
            rank, i = min(pairs)
            if rank == 1 << 62:
                break
            a, b = word[i], word[i + 1]
            merged, j = [], 0
            while j < len(word):  # merge every occurrence of (a, b), left to right
                if j < len(word) - 1 and word[j] == a and word[j + 1] == b:
                    merged.append(a + b)
                    j += 2
                else:
                    merged.append(word[j])
                    j += 1
            word = merged
        try:
            ids = [self.vocab[w] for w in word]
        except KeyError as e:
            raise ValueError(f"BPE produced {e.args[0]!r}, which is not in the vocabulary.") from None
        if len(self._cache) < 100_000:
            self._cache[piece] = ids
        return ids

    def _pieces(self, text: str) -> list[str]:
        chunks = [text]
        if self.split_digits:
            chunks, last = [], 0
            for m in _DIGIT.finditer(text):
                chunks += [text[last:m.start()], m.group()]
                last = m.end()
            chunks.append(text[last:])
        return [p for c in chunks if c for p in _PAT.findall(c)]

    def encode(self, text: str, add_bos: bool = False) -> list[int]:
        """Token ids of ``text`` (special tokens in the text are kept as single ids)."""
        ids = [self.bos_id] if add_bos and self.bos_id is not None else []
        parts = self._special_re.split(text) if self.special else [text]
        for k, part in enumerate(parts):
            if k % 2 == 1:  # a special token
                ids.append(self.vocab[part])
            elif part:
                for p in self._pieces(part):
                    ids += self._bpe(p)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of token ids (invalid UTF-8 byte sequences become U+FFFD)."""
        out, buf = [], bytearray()
        special = set(self.special)
        for i in ids:
            t = self.tokens[int(i)]
            if t in special:
                out.append(buf.decode("utf-8", errors="replace"))
                buf = bytearray()
                out.append(t)
            else:
                buf += bytes(self._u2b[c] for c in t)
        out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)

"""Plain text of the King James Bible from the Debian ``bible-kjv`` data file.

``bible-kjv-text`` ships ``/usr/lib/bible.data``, the Bible Retrieval System's
"EC02" file: a header, a table of window offsets, then the text in 64 KiB
windows, each an LZW stream in Unix ``compress`` format (16-bit codes, block
mode) whose 3-byte ``1f 9d 90`` header appears once before the first window.
This module decodes it in pure Python (about a second) -- byte-identical to
``bible -f "Gen1:1-Rev22:21"`` -- so the ``bible`` program never runs.

The decoded text is a title line, then one verse per line: ``Ge1:1 In the
beginning God created the heaven and the earth.`` (31,102 verses, 66 books).
"""

from __future__ import annotations

import functools
import pathlib
import re
import struct

from experiments.data import fetch
from experiments.data.fetch import Artifact, Source

__all__ = ["ARTIFACTS", "BIBLE_KJV", "BOOKS", "book_text", "decode_bible_data", "unlzw", "verses"]

BIBLE_KJV = Artifact(
  name="bible-kjv",
  description=(
    "King James Bible in the Bible Retrieval System's compressed format "
    "(usr/lib/bible.data) plus the `bible` program; decoded by "
    "experiments.data.bible_kjv."
  ),
  sources=(
    Source(
      "debian",
      "bible-kjv-text",
      "4.38",
      "bible-kjv-text_4.38_all.deb",
      "d61b6aad4c51ba9e2800b825325fa6a09e99a0d02a9bb6dc4724fcc4995a1b7a",
      2445000,
      "pool/main/b/bible-kjv/bible-kjv-text_4.38_all.deb",
    ),
    Source(
      "debian",
      "bible-kjv",
      "4.38",
      "bible-kjv_4.38_amd64.deb",
      "75a49c032a6efa9faa2beb4a9acb70974380122906329d0e100de36cc88ff02d",
      99004,
      "pool/main/b/bible-kjv/bible-kjv_4.38_amd64.deb",
    ),
  ),
  files={
    "data": "usr/lib/bible.data",
    "binary": "usr/bin/bible",
  },
  license="public domain text; package GPL-2",
)

ARTIFACTS = (BIBLE_KJV,)

#: The 66 books' abbreviations as they appear in the data, in canonical order.
BOOKS = (
  "Ge Exo Lev Num Deu Josh Jdgs Ruth 1Sm 2Sm 1Ki 2Ki 1Chr 2Chr Ezra Neh Est Job Psa Prv "
  "Eccl SSol Isa Jer Lam Eze Dan Hos Joel Amos Obad Jonah Mic Nahum Hab Zep Hag Zec Mal "
  "Mat Mark Luke John Acts Rom 1Cor 2Cor Gal Eph Phi Col 1Th 2Th 1Tim 2Tim Titus Phmn Heb "
  "Jas 1Pet 2Pet 1Jn 2Jn 3Jn Jude Rev"
).split()

_VERSE = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")


def unlzw(data: bytes, maxbits: int = 16, block_mode: bool = True) -> bytes:
  """Decode a headerless Unix ``compress`` (LZW) stream.

  Codes start at 9 bits, least-significant bit first; when the code width
  grows or a CLEAR (256) arrives, the reader skips to the end of the current
  group of eight codes, as ``compress`` does.
  """
  total = len(data) * 8
  buf = data + b"\0\0\0\0"
  maxmax = 1 << maxbits
  first = 257 if block_mode else 256
  table: list[bytes] = [bytes([i]) for i in range(256)] + ([b""] if block_mode else [])
  out: list[bytes] = []
  seg = pos = 0
  n_bits, prev = 9, None
  maxcode, mask = (1 << 9) - 1, (1 << 9) - 1

  def align(pos: int, seg: int, n_bits: int) -> int:
    g = n_bits * 8
    return seg + ((pos - seg + g - 1) // g) * g

  while pos + n_bits <= total:
    if len(table) > maxcode and n_bits < maxbits:
      pos = seg = align(pos, seg, n_bits)
      n_bits += 1
      maxcode = maxmax if n_bits == maxbits else (1 << n_bits) - 1
      mask = (1 << n_bits) - 1
      continue
    b = pos >> 3
    code = (int.from_bytes(buf[b : b + 4], "little") >> (pos & 7)) & mask
    pos += n_bits
    if block_mode and code == 256 and prev is not None:
      pos = seg = align(pos, seg, n_bits)
      n_bits, prev = 9, None
      maxcode = mask = (1 << 9) - 1
      del table[first:]
      continue
    if prev is None:
      entry = table[code]
    elif code < len(table):
      entry = table[code]
      if len(table) < maxmax:
        table.append(prev + entry[:1])
    elif code == len(table):
      entry = prev + prev[:1]
      table.append(entry)
    else:
      raise ValueError(f"Corrupt LZW stream: code {code} > next free {len(table)}.")
    out.append(entry)
    prev = entry
  return b"".join(out)


def decode_bible_data(path: str | pathlib.Path) -> str:
  """Decode a whole BRS ``bible.data`` file to text."""
  b = pathlib.Path(path).read_bytes()
  if b[:4] != b"EC02":
    raise ValueError(f"{path} is not a Bible Retrieval System data file (magic {b[:4]!r}).")
  window, count = struct.unpack_from(">II", b, 0x54)
  offsets = struct.unpack_from(f">{count + 1}I", b, 0x5C)
  header = b[offsets[0] - 3 : offsets[0]]
  if header[:2] != b"\x1f\x9d":
    raise ValueError(f"{path}: no compress header before the first window.")
  maxbits, block = header[2] & 0x1F, bool(header[2] & 0x80)
  parts = [unlzw(b[offsets[i] : offsets[i + 1]], maxbits, block) for i in range(count)]
  if any(len(p) != window for p in parts[:-1]):
    raise ValueError(f"{path}: a window did not decode to {window} bytes.")
  return b"".join(parts).decode("latin-1")


@functools.lru_cache(maxsize=2)
def _text(path: str) -> str:
  return decode_bible_data(path)


def verses(path: str | pathlib.Path | None = None) -> list[tuple[str, int, int, str]]:
  """All verses as ``(book, chapter, verse, text)``, in order."""
  path = path if path is not None else fetch.artifact_file(BIBLE_KJV, "data")
  out = []
  for line in _text(str(path)).splitlines()[1:]:
    m = _VERSE.match(line)
    if m:
      out.append((m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)))
  return out


def book_text(books: str | list[str], path: str | pathlib.Path | None = None) -> str:
  """Text of one or more books (abbreviations from :data:`BOOKS`), one verse per line."""
  books = [books] if isinstance(books, str) else list(books)
  unknown = [b for b in books if b not in BOOKS]
  if unknown:
    raise KeyError(f"Unknown book abbreviations {unknown}; known: {' '.join(BOOKS)}.")
  want = set(books)
  return "".join(t + "\n" for b, _, _, t in verses(path) if b in want)

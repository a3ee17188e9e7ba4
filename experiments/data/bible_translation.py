"""English -> Spanish verse pairs: the King James Bible and the Reina-Valera 1909.

The offline stand-in for the paper's WMT translation task. Both texts are public domain
and ship as SWORD modules in Debian (``sword-text-kjv`` = ``engKJV2006eb``,
``sword-text-sparv`` = ``spaRV1909eb``); :data:`BIBLE_TRANSLATION` pins the two ``.deb``
files, :mod:`experiments.data.fetch` downloads them, and :func:`write_pairs` (the
artifact's unpacking step) reads them
with the ``diatheke`` command-line reader (Debian package ``diatheke``, installed with
``apt-get`` if missing), cleans every verse and writes ``pairs.tsv``, pinned by sha256::

    book <TAB> chapter <TAB> verse <TAB> english <TAB> spanish      (30,516 verses)

``book`` is the abbreviation of :data:`experiments.data.bible_kjv.BOOKS`. The raw ``diatheke``
output is kept beside it (``raw/``) so the cleaning can be checked against it.

Cleaning (see :func:`clean_english`, :func:`clean_spanish`): the KJV's pilcrows (``¶``),
stray USFM markers (``\\nd``) and square brackets go; the Reina-Valera's Strong's-number
tags (``<G5547>``), the Hebrew-letter headings inside Psalm 119 (``BETH``) and the
small-capital first word(s) of each chapter (``EN el principio`` -> ``En el principio``)
are normalised. ``diatheke`` prints a Psalm's title before every later verse of a range (a
stale heading), so the KJV titles are read one Psalm at a time and put at the start of
verse 1, where the Reina-Valera has them.

Federated split (:func:`load`): the 66 books fall into 8 contiguous genre groups, one per
node (:data:`GROUPS`: Pentateuch, history, poetry, major prophets, minor prophets,
Gospels, Acts + Paul, Hebrews-Revelation), so every node translates its own books
(non-IID); ``partition='iid'`` deals the same verses out at random instead. Train/test is
80/20 *by verse*, decided by a hash of the verse reference (``sha256("Ge 1:1") % 5 == 0``
is test): deterministic, independent of the partition, and about 20% of every node.

Tokenizer: one byte-pair-encoding vocabulary shared by both languages (the model ties its
source and target embeddings), trained with Hugging Face ``tokenizers`` on the *training*
verses only (NFC normalisation, SentencePiece-style ``Metaspace`` pre-tokenizer with
punctuation split off, so ``decode`` restores the text with its spaces) and saved with the data as
``tokenizer-bpe-<vocab>.json``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import os
import pathlib
import re
import shutil
import subprocess

import numpy as np

from experiments.data import bible_kjv, fetch
from experiments.data.fetch import Artifact, Source
from experiments.data.registry import task
from tailopt.data.types import FederatedData

__all__ = [
  "ARTIFACTS",
  "BIBLE_TRANSLATION",
  "GROUPS",
  "PAD",
  "BOS",
  "EOS",
  "UNK",
  "Pair",
  "bleu",
  "clean_english",
  "clean_spanish",
  "detokenize",
  "drop_versification_seams",
  "encode_pairs",
  "extract_pairs",
  "group_of",
  "is_test",
  "load",
  "make_bleu_eval",
  "pairs",
  "parse_dump",
  "split",
  "tokenizer",
  "train_tokenizer",
  "write_pairs",
]

KJV_MODULE, RV_MODULE = "engKJV2006eb", "spaRV1909eb"
INSTALL = "apt-get install -y diatheke"
#: sha256 of the ``pairs.tsv`` that :func:`write_pairs` makes from the pinned modules.
PAIRS_SHA256 = "34143916c7712972dc3d3be5d15c206a8f8cb7752cd629fa2836fc132fb99728"
PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"  # ids 0, 1, 2, 3

#: Eight contiguous genre groups of :data:`bible_kjv.BOOKS` (name, first book, last book).
GROUPS = (
  ("pentateuch", "Ge", "Deu"),
  ("history", "Josh", "Est"),
  ("poetry", "Job", "SSol"),
  ("major_prophets", "Isa", "Dan"),
  ("minor_prophets", "Hos", "Mal"),
  ("gospels", "Mat", "John"),
  ("acts_paul", "Acts", "Phmn"),
  ("hebrews_revelation", "Heb", "Rev"),
)

# "Genesis 1:1: text", "   I Samuel 3:4: text", "Revelation of John 22:21: text"
_REF = re.compile(r"^\s*([1-3I]*\s?[A-Z][A-Za-z ]*?) (\d+):(\d+):\s?(.*)$")
_HEBREW_LETTERS = (
  "ALEPH BETH GIMEL DALETH HE VAU ZAIN CHETH TETH JOD CAPH LAMED MEM NUN "
  "SAMECH AIN PE TZADDI COPH RESH SIN SCHIN SHIN TAU"
).split()
_LETTER_HEADING = re.compile(r"^(?:%s)\b\.?\s*" % "|".join(_HEBREW_LETTERS))
_CAPS = "A-ZÁÉÍÓÚÑÜ"
# The capitalised opening of a chapter: "EN el", "Y ACONTECIÓ que", "¿POR qué", "PABLO,".
_CAPS_RUN = re.compile(
  rf"^([¿¡(]?)((?:[{_CAPS}]+\s+)*[{_CAPS}]{{2,}}(?:\s+[{_CAPS}]+)*)(?=[\s,.;:!?]|$)"
)


@dataclasses.dataclass(frozen=True)
class Pair:
  book: str
  chapter: int
  verse: int
  en: str
  es: str

  @property
  def ref(self) -> str:
    return f"{self.book} {self.chapter}:{self.verse}"


# ----------------------------------------------------------------------------- cleaning


def _squash(text: str) -> str:
  return re.sub(r"\s+", " ", text).strip()


def clean_english(text: str) -> str:
  """A KJV verse as ``diatheke -f plain`` prints it -> plain text."""
  text = text.replace("¶", " ").replace("\u2019", "'").replace("\u2018", "'")
  text = re.sub(r"\\[a-z]+\d?\*?", " ", text)  # USFM character markers: \nd ... \nd*
  text = re.sub(r"\[([^\]]*)\]", r"\1", text)  # [but] -> but
  return _squash(text)


def _sentence_case(m: re.Match) -> str:
  words = m.group(2).split()
  return m.group(1) + " ".join([words[0].capitalize()] + [w.lower() for w in words[1:]])


def clean_spanish(text: str, *, chapter_start: bool = False, psalm119: bool = False) -> str:
  """A Reina-Valera verse as ``diatheke -f plain`` prints it -> plain text.

  ``chapter_start``: the verse opens a chapter (or a Psalm 119 section), whose first
  word(s) the edition sets in capitals; they are put in sentence case. ``psalm119``:
  strip a leading Hebrew-letter heading (``BETH``, ``GIMEL.``).
  """
  text = re.sub(r"\s*<[GH]\d+[a-z]?>", "", text)  # Strong's numbers
  text = _squash(text)
  if psalm119:
    stripped = _LETTER_HEADING.sub("", text)
    chapter_start = chapter_start or stripped != text
    text = stripped
  if chapter_start:
    text = _CAPS_RUN.sub(_sentence_case, text, count=1)
  return text


def parse_dump(text: str) -> list[tuple[str, int, int, str]]:
  """``(book name, chapter, verse, raw text)`` of every verse line of a diatheke dump.

  Other lines (blank lines, headings, the closing ``(module)``) are dropped.
  """
  out = []
  for line in text.split("\n"):
    m = _REF.match(line)
    if m:
      out.append((m.group(1).strip(), int(m.group(2)), int(m.group(3)), m.group(4)))
  return out


# ----------------------------------------------------------------------------- extraction


def _diatheke(module: str, key: str, sword_path: pathlib.Path) -> str:
  env = dict(os.environ, SWORD_PATH=str(sword_path), LC_ALL="C.UTF-8")
  res = subprocess.run(
    ["diatheke", "-b", module, "-f", "plain", "-k", key], env=env, capture_output=True, check=False
  )
  if res.returncode != 0:
    raise fetch.FetchError(
      f"diatheke -b {module} -k {key!r} failed (exit {res.returncode}): "
      f"{res.stderr.decode(errors='replace').strip()[-500:]}"
    )
  return res.stdout.decode("utf-8")


def _ensure_diatheke() -> None:
  """Install ``diatheke`` with apt-get when it is missing (root only); else one-line error."""
  if shutil.which("diatheke"):
    return
  if shutil.which("apt-get") and os.geteuid() == 0:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "diatheke"]
    if subprocess.run(cmd, env=env, capture_output=True, check=False).returncode != 0:
      subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
      subprocess.run(cmd, env=env, capture_output=True, check=False)
    if shutil.which("diatheke"):
      return
  raise fetch.FetchError(
    f"the SWORD reader `diatheke` is missing and could not be installed here; install it "
    f"with `sudo {INSTALL}` (Debian/Ubuntu), then rerun: "
    f"{BIBLE_TRANSLATION.command}"
  )


def _psalm_title(sword_path: pathlib.Path, chapter: int) -> str:
  lines = _diatheke(KJV_MODULE, f"Ps {chapter}:1", sword_path).split("\n")
  head = []
  for line in lines:
    if _REF.match(line):
      break
    head.append(line)
  return _squash(" ".join(head))


def extract_pairs(sword_path: pathlib.Path) -> tuple[list[Pair], dict[str, str]]:
  """Read both modules under ``sword_path`` with diatheke; return cleaned pairs and raw dumps."""
  _ensure_diatheke()
  raw = {m: _diatheke(m, "Gen 1:1-Rev 22:21", sword_path) for m in (KJV_MODULE, RV_MODULE)}
  en, es = parse_dump(raw[KJV_MODULE]), parse_dump(raw[RV_MODULE])
  if [v[:3] for v in en] != [v[:3] for v in es]:
    raise fetch.FetchError("the KJV and Reina-Valera modules do not list the same verses.")
  names = list(dict.fromkeys(v[0] for v in en))
  if len(names) != len(bible_kjv.BOOKS):
    raise fetch.FetchError(f"expected {len(bible_kjv.BOOKS)} books, diatheke gave {len(names)}.")
  abbrev = dict(zip(names, bible_kjv.BOOKS))
  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    titles = dict(
      zip(range(1, 151), pool.map(lambda c: _psalm_title(sword_path, c), range(1, 151)))
    )
  raw["psalm_titles"] = "".join(f"{c}\t{t}\n" for c, t in titles.items())
  out = []
  for (name, ch, vs, e), (_, _, _, s) in zip(en, es):
    book = abbrev[name]
    if book == "Psa" and vs == 1 and titles.get(ch):
      e = titles[ch] + " " + e
    s = clean_spanish(s, chapter_start=vs == 1, psalm119=(book == "Psa" and ch == 119))
    out.append(Pair(book, ch, vs, clean_english(e), s))
  return drop_versification_seams(out), raw


def drop_versification_seams(ps: list[Pair]) -> list[Pair]:
  """Drop the chapters where the two versifications disagree.

  Where the Reina-Valera numbers verses differently from the KJV, its module leaves a
  verse empty and either merges that text into the verse before (2 Cor 13:13 holds the
  KJV's 13:13-14) or shifts the following chapter by one or more verses (RV Num 13:1 is
  the KJV's Num 12:16). Either way the neighbouring pairs no longer match, so a chapter
  with an empty verse, and the next chapter of the same book, are left out (23 chapters,
  586 of the 31,102 verses).
  """
  seams = {(p.book, p.chapter) for p in ps if not p.en or not p.es}
  bad = seams | {(b, c + 1) for b, c in seams}
  return [p for p in ps if (p.book, p.chapter) not in bad]


def write_pairs(root: pathlib.Path) -> None:
  """The artifact's unpacking step: modules under ``root/usr/share/sword`` -> pairs.tsv."""
  pairs_, raw = extract_pairs(root / "usr" / "share" / "sword")
  (root / "raw").mkdir(exist_ok=True)
  for name, text in raw.items():
    (root / "raw" / f"{name}.txt").write_text(text, encoding="utf-8")
  body = "".join(f"{p.book}\t{p.chapter}\t{p.verse}\t{p.en}\t{p.es}\n" for p in pairs_)
  data = body.encode("utf-8")
  digest = hashlib.sha256(data).hexdigest()
  if digest != PAIRS_SHA256:
    raise fetch.FetchError(
      f"pairs.tsv extracted from the pinned SWORD modules has sha256 {digest}, expected "
      f"{PAIRS_SHA256}: the installed diatheke ({shutil.which('diatheke')}) renders the "
      f"text differently; use Debian 12's diatheke 1.9.0 ({INSTALL})."
    )
  (root / "pairs.tsv").write_bytes(data)


BIBLE_TRANSLATION = Artifact(
  name="bible-translation",
  description=(
    "KJV (English) and Reina-Valera 1909 (Spanish) SWORD modules, read with "
    "diatheke (apt-get install -y diatheke) into verse-aligned pairs.tsv "
    "(pinned by sha256); used by experiments.data.bible_translation."
  ),
  sources=(
    Source(
      "debian",
      "sword-text-kjv",
      "14.3-1",
      "sword-text-kjv_14.3-1_all.deb",
      "9f463f28ce665f6f528fc723179722bced880a4c5485f7a41bf742838315de57",
      2800476,
      "pool/main/s/sword-text-kjv/sword-text-kjv_14.3-1_all.deb",
    ),
    Source(
      "debian",
      "sword-text-sparv",
      "2.60-1",
      "sword-text-sparv_2.60-1_all.deb",
      "5c87f9b2bc97457e8a872f5bae7ea7ce59cb3de1dcee73e4d4740451863694cf",
      2722332,
      "pool/main/s/sword-text-sparv/sword-text-sparv_2.60-1_all.deb",
    ),
  ),
  post=write_pairs,
  files={
    "pairs": "pairs.tsv",
    "raw_kjv": "raw/engKJV2006eb.txt",
    "raw_rv": "raw/spaRV1909eb.txt",
  },
  license="public domain texts; packages GPL-2+ (diatheke) / public domain",
)

ARTIFACTS = (BIBLE_TRANSLATION,)


# ----------------------------------------------------------------------------- loading


@functools.lru_cache(maxsize=2)
def _read_pairs(path: str) -> tuple[Pair, ...]:
  out = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      b, c, v, en, es = line.rstrip("\n").split("\t")
      out.append(Pair(b, int(c), int(v), en, es))
  return tuple(out)


def pairs(path: str | os.PathLike | None = None) -> tuple[Pair, ...]:
  """All verse pairs in canonical order (needs ``python -m experiments.data.fetch bible-translation``)."""
  path = path if path is not None else fetch.artifact_file(BIBLE_TRANSLATION, "pairs")
  return _read_pairs(str(path))


def is_test(ref: str) -> bool:
  """The 80/20 split: a verse is held out iff sha256 of its reference is 0 mod 5."""
  return int.from_bytes(hashlib.sha256(ref.encode()).digest()[:8], "big") % 5 == 0


def group_of(book: str) -> int:
  """Index in :data:`GROUPS` of a book abbreviation."""
  i = bible_kjv.BOOKS.index(book)
  for g, (_, first, last) in enumerate(GROUPS):
    if bible_kjv.BOOKS.index(first) <= i <= bible_kjv.BOOKS.index(last):
      return g
  raise AssertionError(book)  # GROUPS covers every book (tested)


def split(all_pairs, *, partition: str = "genre", num_clients: int = 8, seed: int = 0):
  """``(clients, client_tests, names)``: lists of pair lists, one per node.

  ``'genre'``: node ``g`` holds the books of ``GROUPS[g]`` (needs ``num_clients=8``);
  ``'iid'``: every verse goes to a node drawn uniformly at random (``seed``).
  Within a node, :func:`is_test` picks its held-out verses.
  """
  if partition == "genre":
    if num_clients != len(GROUPS):
      raise ValueError(
        f"partition='genre' has {len(GROUPS)} nodes (one per group of books) "
        f"but num_clients={num_clients}; set config.clients=8 or "
        f"config.data.partition='iid'."
      )
    owner = np.array([group_of(p.book) for p in all_pairs])
    names = [g[0] for g in GROUPS]
  elif partition == "iid":
    owner = np.random.default_rng(seed).integers(0, num_clients, len(all_pairs))
    names = [f"client_{i}" for i in range(num_clients)]
  else:
    raise ValueError(f"partition={partition!r}; use 'genre' or 'iid'.")
  test = np.array([is_test(p.ref) for p in all_pairs])
  clients = [
    [p for p, o, t in zip(all_pairs, owner, test) if o == c and not t] for c in range(num_clients)
  ]
  tests = [
    [p for p, o, t in zip(all_pairs, owner, test) if o == c and t] for c in range(num_clients)
  ]
  return clients, tests, names


def train_tokenizer(texts, vocab_size: int):
  """A BPE ``tokenizers.Tokenizer`` trained on ``texts`` (deterministic; ids 0-3 special)."""
  from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

  tok = Tokenizer(models.BPE(unk_token=UNK))
  tok.normalizer = normalizers.NFC()
  tok.pre_tokenizer = pre_tokenizers.Sequence(
    [pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation(behavior="isolated")]
  )
  tok.decoder = decoders.Metaspace()
  trainer = trainers.BpeTrainer(
    vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS, UNK], min_frequency=2, show_progress=False
  )
  tok.train_from_iterator(list(texts), trainer=trainer)
  return tok


def tokenizer(vocab_size: int = 8000, root: str | os.PathLike | None = None):
  """The shared BPE vocabulary trained on the training verses, cached beside the data."""
  from tokenizers import Tokenizer

  root = pathlib.Path(root) if root is not None else fetch.artifact_path(BIBLE_TRANSLATION)
  path = root / f"tokenizer-bpe-{vocab_size}.json"
  if path.is_file():
    return Tokenizer.from_file(str(path))
  train = [p for p in pairs(root / "pairs.tsv") if not is_test(p.ref)]
  tok = train_tokenizer([t for p in train for t in (p.en, p.es)], vocab_size)
  tmp = path.with_suffix(f".{os.getpid()}.tmp")
  tok.save(str(tmp))
  tmp.replace(path)
  return tok


def _pad(rows, max_len: int):
  ids = np.zeros((len(rows), max_len), np.int32)
  for i, r in enumerate(rows):
    r = r[:max_len]
    ids[i, : len(r)] = r
  return ids, (ids != 0).astype(np.int32)


def _arrays(en_ids, es_ids, max_len: int, bos: int, eos: int) -> dict:
  src, src_mask = _pad([list(e) + [eos] for e in en_ids], max_len)
  tgt_in, _ = _pad([[bos] + list(s) for s in es_ids], max_len)
  tgt_out, tgt_mask = _pad([list(s) + [eos] for s in es_ids], max_len)
  return dict(
    src=src, src_mask=src_mask, tgt_in=tgt_in, tgt_out=tgt_out, tgt_mask=tgt_mask.astype(np.float32)
  )


def encode_pairs(tok, ps, max_len: int) -> dict:
  """Seq2seq arrays: ``src`` = English + EOS, ``tgt_in`` = BOS + Spanish, ``tgt_out`` =
  Spanish + EOS; truncated to ``max_len``, padded with 0 (masks mark real tokens)."""
  en = [e.ids for e in tok.encode_batch([p.en for p in ps])]
  es = [e.ids for e in tok.encode_batch([p.es for p in ps])]
  return _arrays(en, es, max_len, tok.token_to_id(BOS), tok.token_to_id(EOS))


def _encoded_corpus(tok, root: pathlib.Path, vocab_size: int, all_pairs):
  """Token ids of every pair's two sides, encoded once and cached beside the tokenizer."""
  path = root / f"tokenizer-bpe-{vocab_size}.ids.npz"
  if not path.is_file():
    sides = {}
    for side in ("en", "es"):
      ids = [e.ids for e in tok.encode_batch([getattr(p, side) for p in all_pairs])]
      sides[side] = np.concatenate([np.asarray(i, np.int32) for i in ids])
      sides[side + "_len"] = np.array([len(i) for i in ids], np.int64)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **sides)
    tmp.replace(path)
  z = np.load(path)
  if len(z["en_len"]) != len(all_pairs):
    raise ValueError(f"{path} does not match pairs.tsv; delete it and rerun.")
  return tuple(np.split(z[s], np.cumsum(z[s + "_len"])[:-1]) for s in ("en", "es"))


def bleu(hypotheses, references) -> float:
  """Corpus BLEU (sacrebleu's defaults: 13a tokenisation, case-sensitive), one reference."""
  import sacrebleu

  return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def bleu_indices(data: FederatedData, num_examples: int) -> np.ndarray:
  """The BLEU eval's fixed subset: ``num_examples`` test verses evenly spaced through the
  canonical order (so every group of books is represented)."""
  n = min(int(num_examples), len(data.meta["test_pairs"]))
  return np.unique(np.linspace(0, len(data.meta["test_pairs"]) - 1, n).round().astype(int))


def make_bleu_eval(
  generate,
  data: FederatedData,
  *,
  num_examples: int = 256,
  batch_size: int = 128,
  beam_size: int = 1,
  length_alpha: float = 0.6,
):
  """``params -> {'bleu': ...}``: sacrebleu corpus BLEU of decoded test verses.

  ``generate`` is a seq2seq model's ``meta['generate']``. The subset is fixed
  (:func:`bleu_indices`); hypotheses are the decoded Spanish (greedy when
  ``beam_size=1``) up to EOS, references the cleaned, untruncated Reina-Valera verses.
  """
  import jax  # pylint: disable=g-import-not-at-top

  tok, meta = data.meta["tokenizer"], data.meta
  test_pairs = meta["test_pairs"]
  idx = bleu_indices(data, num_examples)
  src, src_mask = data.test["src"][idx], data.test["src_mask"][idx]
  refs = [test_pairs[i].es for i in idx]
  bs = min(batch_size, len(idx))
  gen = jax.jit(
    functools.partial(
      generate,
      bos_id=meta["bos_id"],
      eos_id=meta["eos_id"],
      pad_id=meta["pad_id"],
      steps=meta["max_len"],
      beam_size=beam_size,
      length_alpha=length_alpha,
    )
  )

  def bleu_eval(params) -> dict:
    # On one device: the training mesh's replicated params would run it once per device.
    params = jax.device_put(params, jax.devices()[0])
    rows = []
    for s in range(0, len(idx), bs):
      b_src, b_mask = src[s : s + bs], src_mask[s : s + bs]
      k = len(b_src)
      if k < bs:  # pad the last batch: one compiled shape
        b_src = np.concatenate([b_src, np.repeat(b_src[:1], bs - k, 0)])
        b_mask = np.concatenate([b_mask, np.repeat(b_mask[:1], bs - k, 0)])
      rows.extend(np.asarray(gen(params, b_src, b_mask))[:k])
    return {"bleu": bleu(detokenize(tok, rows, meta["eos_id"]), refs)}

  bleu_eval.references = refs
  return bleu_eval


def detokenize(tok, rows, eos_id: int) -> list[str]:
  """Text of each row of token ids, up to (not including) its first EOS; padding dropped."""
  out = []
  for r in rows:
    r = np.asarray(r)
    hits = np.flatnonzero(r == eos_id)
    r = r[: hits[0]] if len(hits) else r
    out.append(tok.decode([int(t) for t in r], skip_special_tokens=True))
  return out


def load(
  *,
  num_clients: int = 8,
  partition: str = "genre",
  vocab_size: int = 8000,
  max_len: int = 64,
  seed: int = 0,
  limit: int | None = None,
  test_limit: int | None = None,
  path: str | os.PathLike | None = None,
) -> FederatedData:
  """The federated translation task; see the module docstring.

  ``limit``: keep at most this many training pairs per node (the first, in canonical
  order; tests and smoke runs). ``test_limit``: keep this many pooled test verses, evenly
  spaced through the canonical order (per-node ``client_test`` stays whole). ``meta`` has the ``tokenizer``, the ids, and the held-out
  ``test_pairs`` (canonical order, aligned with ``test``) for BLEU.
  """
  root = pathlib.Path(path).parent if path is not None else fetch.artifact_path(BIBLE_TRANSLATION)
  all_pairs = pairs(root / "pairs.tsv")
  clients, tests, names = split(all_pairs, partition=partition, num_clients=num_clients, seed=seed)
  if limit:
    clients = [c[:limit] for c in clients]
  tok = tokenizer(vocab_size, root)
  en_ids, es_ids = _encoded_corpus(tok, root, vocab_size, all_pairs)
  row = {p: i for i, p in enumerate(all_pairs)}
  bos, eos = tok.token_to_id(BOS), tok.token_to_id(EOS)

  def arrays(ps):
    idx = [row[p] for p in ps]
    return _arrays([en_ids[i] for i in idx], [es_ids[i] for i in idx], max_len, bos, eos)

  test_pairs = [p for p in all_pairs if is_test(p.ref)]  # = the nodes' held-out verses
  if test_limit and test_limit < len(test_pairs):
    keep = np.unique(np.linspace(0, len(test_pairs) - 1, test_limit).round().astype(int))
    test_pairs = [test_pairs[i] for i in keep]
  data = FederatedData(
    clients=[arrays(c) for c in clients],
    test=arrays(test_pairs),
    client_names=names,
    client_test=[arrays(t) for t in tests],
    meta=dict(
      source="KJV -> Reina-Valera 1909 (SWORD modules)",
      task="translation",
      vocab_size=tok.get_vocab_size(),
      max_len=max_len,
      tokenizer=tok,
      pad_id=0,
      bos_id=bos,
      eos_id=eos,
      test_pairs=test_pairs,
      partition=partition,
    ),
  )
  return data


@task("bible_translation", artifacts=("bible-translation",))
def bible_translation_task(config, make_model):
  """KJV English -> Reina-Valera 1909 Spanish, books by genre across 8 nodes, seq2seq,
  sacrebleu BLEU of greedy (or beam) decodes at each eval: the WMT stand-in."""
  d = config.data
  data = load(
    num_clients=config.data_clients or config.clients,
    partition=d.partition,
    vocab_size=d.vocab_size,
    max_len=d.max_len,
    seed=config.seed,
    limit=d.limit or None,
    test_limit=d.test_limit or None,
  )
  model = make_model(vocab_size=data.meta["vocab_size"], max_len=d.max_len)
  # Corpus-level metrics for the loop's eval (experiments.engines.evaluation: meta['corpus_eval']).
  model.meta["corpus_eval"] = make_bleu_eval(
    model.meta["generate"],
    data,
    num_examples=d.bleu_examples,
    batch_size=config.eval_batch_size,
    beam_size=d.beam_size,
  )
  model.meta["corpus_eval_keys"] = ("bleu",)
  return data, model

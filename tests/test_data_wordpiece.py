"""WordPiece tokenizer: synthetic vocab checks and goldens from HF `tokenizers`."""

import numpy as np
import pytest

from _data_helpers import need
from tailopt.data import fetch
from tailopt.data.wordpiece import WordPiece

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]


@pytest.fixture
def tiny():
  vocab = SPECIALS + ["un", "##aff", "##able", "hello", "world", "!", ",", "'", "s", "cafe",
                      "日", "a", "##b"]
  return WordPiece({t: i for i, t in enumerate(vocab)})


def test_normalize_lowercases_strips_accents_and_controls(tiny):
  assert tiny.normalize("Héllo\tCAFÉ\x00\u200b!") == "hello cafe!"
  assert tiny.normalize("日x") == " 日 x"


def test_pre_tokenize_isolates_punctuation(tiny):
  assert tiny.pre_tokenize("hello, world's!  a") == ["hello", ",", "world", "'", "s", "!", "a"]


def test_greedy_longest_match_and_unk(tiny):
  assert tiny.tokenize("Unaffable") == ["un", "##aff", "##able"]
  assert tiny.tokenize("abb") == ["a", "##b", "##b"]
  assert tiny.tokenize("unx hello") == ["[UNK]", "hello"]  # whole word becomes UNK
  assert tiny.tokenize("a" * 101) == ["[UNK]"]  # longer than max_input_chars_per_word


def test_encode_template_truncation_and_padding(tiny):
  ids, types = tiny.encode("hello world", "cafe")
  assert ids == [2, 7, 8, 3, 13, 3] and types == [0, 0, 0, 0, 1, 1]
  assert tiny.encode("hello world cafe", max_len=4)[0] == [2, 7, 8, 3]
  ids, mask = tiny.batch_encode(["hello", "hello world !"], max_len=5)
  np.testing.assert_array_equal(ids, [[2, 7, 3, 0, 0], [2, 7, 8, 9, 3]])
  np.testing.assert_array_equal(mask, [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
  assert ids.dtype == np.int32
  with pytest.raises(ValueError, match="no room"):
    tiny.encode("hello", "world", max_len=2)


def test_missing_special_token_is_an_error():
  with pytest.raises(ValueError, match=r"\[CLS\]"):
    WordPiece({"[PAD]": 0, "[UNK]": 1, "[SEP]": 2})


@pytest.fixture(scope="module")
def minilm():
  need("minilm")
  return WordPiece.from_file(fetch.artifact_file("minilm", "tokenizer"))


# Goldens produced by HuggingFace `tokenizers` on the same tokenizer.json.
GOLDEN = {
    "The Rock is destined to be the 21st Century's new ''Conan''":
        [101, 1996, 2600, 2003, 16036, 2000, 2022, 1996, 7398, 2301, 1005, 1055, 2047, 1005,
         1005, 16608, 1005, 1005, 102],
    "Effective but too tepid biopic": [101, 4621, 2021, 2205, 8915, 23267, 16012, 24330, 102],
    "Héllo wörld! naïve café": [101, 7592, 2088, 999, 15743, 7668, 102],
    "日本語 fine": [101, 1864, 1876, 1950, 2986, 102],
    "don't\x00 stop\u200b me": [101, 2123, 1005, 1056, 2644, 2033, 102],
    "a" * 101: [101, 100, 102],
    "unaffable": [101, 14477, 20961, 3468, 102],
}


def test_minilm_matches_huggingface_goldens(minilm):
  assert minilm.vocab_size == 30522
  for text, ids in GOLDEN.items():
    assert minilm.encode(text)[0] == ids, text
  assert minilm.tokenize("Effective but too tepid biopic") == [
      "effective", "but", "too", "te", "##pid", "bio", "##pic"]


def test_minilm_pair_longest_first_truncation_matches_huggingface(minilm):
  cases = [
      (("one two three four five six seven", "eight nine ten eleven"),
       [101, 2028, 2048, 2093, 2176, 102, 2809, 3157, 2702, 102]),
      (("a", "b c d e f g h i j k l"), [101, 1037, 102, 1038, 1039, 1040, 1041, 1042, 1043, 102]),
      (("one two three four five six seven eight nine ten", "x"),
       [101, 2028, 2048, 2093, 2176, 2274, 2416, 102, 1060, 102]),
  ]
  for (a, b), ids in cases:
    assert minilm.encode(a, b, max_len=10)[0] == ids
  assert minilm.encode("a gorgeous film", "really dull") == (
      [101, 1037, 9882, 2143, 102, 2428, 10634, 102], [0, 0, 0, 0, 0, 1, 1, 1])


def test_minilm_decode_roundtrip(minilm):
  ids, _ = minilm.encode("Effective but too tepid biopic.")
  assert minilm.decode(ids) == "effective but too tepid biopic."


def test_against_tokenizers_package_if_installed(minilm):
  tokenizers = pytest.importorskip("tokenizers")
  hf = tokenizers.Tokenizer.from_file(str(fetch.artifact_file("minilm", "tokenizer")))
  hf.no_padding()
  hf.no_truncation()
  for text in ["It's a wonderful, wonderful life!", "Ça coûte 3,50 € — trop cher?", "LOL :-) #win"]:
    assert minilm.encode(text)[0] == hf.encode(text).ids

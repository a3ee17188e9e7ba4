"""Tokenizers built with Hugging Face ``tokenizers`` against independent references on real text.

References (tests/goldens/):
* ``old_tokenizer_ids.json``: ids of our former hand-written WordPiece (MiniLM) and byte-level
  BPE (SmolLM2) on ten real sentences (recorded by record_old_readers.py before they were
  replaced). The library tokenizers reproduce every one of them.
* ``qwen2_tokenizer_ids.json``: ids of transformers' GGUF tokenizer converter (an independent
  construction from the same GGUF vocabulary; record_qwen2_ids.py).
* MiniLM goldens below were produced by ``tokenizers`` on MiniLM's tokenizer.json.
"""

import json
import pathlib

import numpy as np
import pytest

from _data_helpers import need
from _model_helpers import gguf
from experiments.data import fetch
from experiments.data.tokenization import Tokenizer

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

GOLDENS = pathlib.Path(__file__).parent / "goldens"
OLD = json.loads((GOLDENS / "old_tokenizer_ids.json").read_text())
QWEN = json.loads((GOLDENS / "qwen2_tokenizer_ids.json").read_text())


# ------------------------------------------------------------------------------ MiniLM


@pytest.fixture(scope="module")
def minilm():
  need("minilm")
  return Tokenizer.from_file(fetch.artifact_file("minilm", "tokenizer"))


MINILM_GOLDEN = {
  "The Rock is destined to be the 21st Century's new ''Conan''": [
    101,
    1996,
    2600,
    2003,
    16036,
    2000,
    2022,
    1996,
    7398,
    2301,
    1005,
    1055,
    2047,
    1005,
    1005,
    16608,
    1005,
    1005,
    102,
  ],
  "Effective but too tepid biopic": [101, 4621, 2021, 2205, 8915, 23267, 16012, 24330, 102],
  "Héllo wörld! naïve café": [101, 7592, 2088, 999, 15743, 7668, 102],
  "日本語 fine": [101, 1864, 1876, 1950, 2986, 102],
  "don't\x00 stop\u200b me": [101, 2123, 1005, 1056, 2644, 2033, 102],
  "a" * 101: [101, 100, 102],
  "unaffable": [101, 14477, 20961, 3468, 102],
}


def test_minilm_matches_goldens_and_former_wordpiece(minilm):
  assert minilm.vocab_size == 30522 and minilm.pad_id == 0
  for text, ids in MINILM_GOLDEN.items():
    assert minilm.encode(text) == ids, text
  for text, ids in zip(OLD["sentences"], OLD["minilm_wordpiece"]):
    assert minilm.encode(text) == ids, text


def test_minilm_pairs_truncate_longest_first(minilm):
  cases = [
    (
      ("one two three four five six seven", "eight nine ten eleven"),
      [101, 2028, 2048, 2093, 2176, 102, 2809, 3157, 2702, 102],
    ),
    (("a", "b c d e f g h i j k l"), [101, 1037, 102, 1038, 1039, 1040, 1041, 1042, 1043, 102]),
    (
      ("one two three four five six seven eight nine ten", "x"),
      [101, 2028, 2048, 2093, 2176, 2274, 2416, 102, 1060, 102],
    ),
  ]
  for (a, b), ids in cases:
    got, mask = minilm.batch_encode([a], max_len=10, pairs=[b])
    assert got[0].tolist() == ids and mask.sum() == 10
  assert minilm.encode("a gorgeous film", "really dull") == [
    101,
    1037,
    9882,
    2143,
    102,
    2428,
    10634,
    102,
  ]


def test_minilm_batch_encode_pads_and_truncates(minilm):
  ids, mask = minilm.batch_encode(["hello", "a gorgeous film"], max_len=5)
  np.testing.assert_array_equal(ids, [[101, 7592, 102, 0, 0], [101, 1037, 9882, 2143, 102]])
  np.testing.assert_array_equal(mask, [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
  assert ids.dtype == np.int32
  ids, _ = minilm.batch_encode(["one two three four five"], max_len=4)
  assert ids.tolist() == [[101, 2028, 2048, 102]]  # [SEP] kept after truncation
  assert minilm.decode(
    minilm.encode("Effective but too tepid biopic."), skip_special_tokens=True
  ) == ("effective but too tepid biopic.")


def test_missing_tokenizer_file_is_one_line(tmp_path):
  with pytest.raises(FileNotFoundError, match="tokenizer.json") as e:
    Tokenizer.from_file(tmp_path / "tokenizer.json")
  assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- SmolLM2


@pytest.fixture(scope="module")
def smollm2():
  return Tokenizer.from_gguf(gguf("smollm2"))


def test_smollm2_matches_former_bpe_and_roundtrips(smollm2):
  assert len(smollm2) == 49152 and smollm2.eos_id == 2
  for text, ids in zip(OLD["sentences"], OLD["smollm2_bpe"]):
    assert smollm2.encode(text) == ids, text
    assert smollm2.decode(ids) == text
  assert smollm2.encode("The capital of France is") == [504, 3575, 282, 4649, 314]
  ids = smollm2.encode("<|im_start|>user")
  assert ids[0] == 1 and smollm2.decode(ids[:1]) == "<|im_start|>"
  assert smollm2.encode("2024") == [
    smollm2.token_to_id(c) for c in "2024"
  ]  # digits split individually


# ------------------------------------------------------------------------------- Qwen2


@pytest.fixture(scope="module")
def qwen():
  return Tokenizer.from_gguf(gguf("qwen2.5-0.5b"))


def test_qwen2_matches_transformers_converter(qwen):
  assert len(qwen) == 151936 and qwen.eos_id == 151645  # <|im_end|>
  assert qwen.encode("Hello world") == [9707, 1879]
  for text, ids in zip(QWEN["sentences"], QWEN["ids"]):
    assert qwen.encode(text) == ids, text
    assert qwen.decode(ids) == text
  assert qwen.encode("1234") == [16, 17, 18, 19]  # Qwen2 splits every digit (\p{N})


def test_qwen2_live_against_transformers_if_installed(qwen):
  pytest.importorskip("transformers")
  from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer

  md = gguf("qwen2.5-0.5b").metadata
  ref, _ = convert_gguf_tokenizer(
    "qwen2",
    {
      "tokenizer_type": md["tokenizer.ggml.model"],
      "pre_tokenizer_type": md["tokenizer.ggml.pre"],
      "tokens": md["tokenizer.ggml.tokens"],
      "token_type": md["tokenizer.ggml.token_type"],
      "merges": md["tokenizer.ggml.merges"],
    },
  )
  text = pathlib.Path(__file__).read_text()  # code, quotes, digits, newlines, indentation
  assert qwen.encode(text) == ref.encode(text, add_special_tokens=False).ids


def test_qwen2_normalises_nfc(qwen):
  # Qwen2's tokenizer.json has an NFC normalizer (transformers' GGUF converter omits it)
  assert qwen.encode("cafe\u0301") == qwen.encode("café")


def test_qwen2_chat_template(qwen):
  text = qwen.chat([{"role": "user", "content": "What is the capital of France?"}])
  assert text == (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
    "<|im_start|>assistant\n"
  )
  ids = qwen.encode(text)
  assert ids[0] == 151644 and ids.count(151645) == 2 and ids[-3:] == [151644, 77091, 198]

"""Record reference outputs of the hand-written readers (gguf_reader, bpe, wordpiece, own safetensors
reader) at commit 1350ca5, before the libraries replaced them. Kept for provenance: it no longer
runs, since those modules are gone. Run from the repository root at that commit."""

import json
import time
import jax
import jax.numpy as jnp
import numpy as np
from tailopt.models.llama import make_llama
from tailopt.models.bert import make_bert
from tailopt.data.fetch import artifact_file
from tailopt.data.wordpiece import WordPiece

SENTS = [
  "The capital of France is",
  "The history of science is the study of the development of science and scientific knowledge.",
  "Hello world! It's 2024: 12345 cafés — naïve résumé 😀.\n\n  indented",
  "<|im_start|>user\nWhat is 2+2?<|im_end|>\n",
  "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer",
  "In the beginning God created the heaven and the earth.",
  "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.",
  "def f(x):\n    return x**2  # square\t\ttabs   and   spaces",
  "Ça coûte 3,50 € — trop cher? 日本語のテキスト, Ελληνικά, русский.",
  "don't won't I'm you'll they'd WE'RE",
]
t0 = time.time()
m = make_llama()
tok = m.meta["tokenizer"]
ids = {s: tok.encode(s) for s in SENTS}
TEXT = (
  "The history of science is the study of the development of science and scientific knowledge, "
  "including both the natural and social sciences."
)
x = np.asarray(tok.encode(TEXT), np.int32)[None]
logits = np.asarray(jax.jit(m.meta["apply"])(m.init(jax.random.key(0)), jnp.asarray(x)))[0]
print("smollm2 logits", logits.shape, time.time() - t0)
sm = dict(
  smollm2_tokens=x[0],
  smollm2_logits_cols=logits[:, ::64],
  smollm2_argmax=logits.argmax(-1),
  smollm2_lse=np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1),
)
del m
wp = WordPiece.from_file(artifact_file("minilm", "tokenizer"))
wids = {s: wp.encode(s)[0] for s in SENTS}
b = make_bert(num_classes=2, trainable="head")
bx, bm = wp.batch_encode(SENTS, max_len=48)
emb = np.asarray(jax.jit(b.meta["embed"])(b.init(jax.random.key(0)), bx, bm))
np.savez_compressed(
  "tests/goldens/old_readers_reference.npz", minilm_ids=bx, minilm_mask=bm, minilm_embed=emb, **sm
)
json.dump(
  {
    "sentences": SENTS,
    "smollm2_bpe": [ids[s] for s in SENTS],
    "minilm_wordpiece": [wids[s] for s in SENTS],
  },
  open("tests/goldens/old_tokenizer_ids.json", "w"),
  ensure_ascii=False,
  indent=0,
)
print("done", time.time() - t0)

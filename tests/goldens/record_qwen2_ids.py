"""Record Qwen2.5 token ids with an independent implementation: transformers' GGUF tokenizer
converter (``transformers.integrations.gguf``, which builds its own ``tokenizers`` pipeline from
the GGUF vocabulary). Run from the repository root: ``python tests/goldens/record_qwen2_ids.py``.
Transformers omits Qwen2's NFC normaliser, so the sentences here are already NFC."""

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer  # noqa: E402

from experiments.data.fetch import artifact_file  # noqa: E402
from experiments.models.checkpoints import GGUF  # noqa: E402

here = pathlib.Path(__file__).parent
sentences = json.loads((here / "old_tokenizer_ids.json").read_text())["sentences"] + [
  "Hello world",
  "  x\n\n\ny  1234567 ",
  "What is the capital of France?",
  "<|im_start|>user\nHi<|im_end|>\n<|fim_prefix|>def<|fim_suffix|>",
  "I'M here, you'RE there",
]
md = GGUF(artifact_file("qwen2.5-0.5b", "gguf")).metadata
hf, _ = convert_gguf_tokenizer(
  "qwen2",
  {
    "tokenizer_type": md["tokenizer.ggml.model"],
    "pre_tokenizer_type": md["tokenizer.ggml.pre"],
    "tokens": md["tokenizer.ggml.tokens"],
    "token_type": md["tokenizer.ggml.token_type"],
    "merges": md["tokenizer.ggml.merges"],
  },
)
out = {
  "source": "transformers GGUF converter (qwen2)",
  "sentences": sentences,
  "ids": [hf.encode(s, add_special_tokens=False).ids for s in sentences],
}
(here / "qwen2_tokenizer_ids.json").write_text(json.dumps(out, ensure_ascii=False, indent=0))

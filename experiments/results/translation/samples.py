"""Greedy translations of a few test verses by each finished run under the given folders
(for reading by eye), e.g. seed 1 of each kept point of the study:

python experiments/results/translation/samples.py runs/translation_study/*/*/seed1 > samples.md
"""

import json
import os
import pathlib
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3]))

import numpy as np  # noqa: E402
from ml_collections import config_dict  # noqa: E402

from experiments import tasks  # noqa: E402
from experiments.engines.loop import final_params  # noqa: E402
from experiments.data import bible_translation as bt  # noqa: E402

picks = [0, 300, 600, 900]  # fixed positions in the 1,024-verse test subset


def print_scale(config, data) -> None:
  """BLEU on the eval's own verses of two fixed outputs, for scale: the English source
  copied, and the reference cut at the model's output length (the cap of this setting)."""
  m = data.meta
  idx = bt.bleu_indices(data, config.data.bleu_examples)
  refs = [m["test_pairs"][i].es for i in idx]
  copied = bt.bleu([m["test_pairs"][i].en for i in idx], refs)
  cut = bt.bleu(bt.detokenize(m["tokenizer"], data.test["tgt_out"][idx], m["eos_id"]), refs)
  print(
    f"For scale, on the eval's {len(idx)} verses: copying the English source scores BLEU "
    f"{copied:.2f}; the reference cut at {m['max_len']} tokens scores {cut:.1f}.\n"
  )


runs = sorted({s.parent for a in sys.argv[1:] for s in pathlib.Path(a).rglob("summary.json")})
for k, run in enumerate(runs):
  config = config_dict.ConfigDict(json.loads((run / "config.json").read_text()))
  params, _ = final_params(config, str(run))
  data, model = tasks.build_task(config)
  m = data.meta
  if k == 0:
    print_scale(config, data)
  out = model.meta["generate"](
    params,
    data.test["src"][picks],
    data.test["src_mask"][picks],
    bos_id=m["bos_id"],
    eos_id=m["eos_id"],
    steps=m["max_len"],
  )
  hyps = bt.detokenize(m["tokenizer"], np.asarray(out), m["eos_id"])
  print(f"## {'/'.join(run.parts[-3:])}\n")
  for i, h in zip(picks, hyps):
    p = m["test_pairs"][i]
    print(f"- **{p.ref}** EN: {p.en}\n  - reference: {p.es}\n  - model: {h}\n")

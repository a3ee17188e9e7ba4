"""WMT19 translation (tensorflow-datasets ``wmt19_translate/<pair>``) with a small
encoder-decoder. The paper fine-tunes T5; no T5 weights are available offline, so this is
a from-scratch seq2seq with the MiniLM WordPiece vocabulary. Needs the dataset prepared
once with internet; there is no offline stand-in.

    python -m experiments.main --config configs/wmt19.py --workdir runs/wmt

Variants: ``runlocal``.
"""

from configs.common import REAL_METHODS, base_config, model_section, parse_variants


def get_config(arg: str = ""):
  v = parse_variants(arg, {"runlocal"}, "configs/wmt19.py")
  c = base_config()
  c.task = "wmt19"
  c.data = dict(pair="de-en", max_len=64, limit=100_000, data_dir="")
  c.model = model_section(
    "seq2seq", d_model=256, num_heads=4, encoder_layers=3, decoder_layers=3, mlp_dim=1024
  )
  c.method = "bi2clip"
  c.tuned[c.method] = dict(  # the tuned point of the config's method
    inner_lr=0.03, inner_upper=1.0, inner_lower=1e-4, outer_lr=1.0, outer_upper=0.01
  )
  c.clients = 8
  c.local_steps = 8
  c.batch_size = 32
  c.rounds = 1000
  c.eval_every = 50
  c.eval_batch_size = 256
  c.report_metric, c.report_mode = "eval/loss", "min"
  c.sweep.methods = REAL_METHODS
  if "runlocal" in v:
    c.model.kwargs.update(d_model=32, num_heads=2, encoder_layers=1, decoder_layers=1, mlp_dim=64)
    c.data.max_len, c.data.limit = 12, 64
    c.clients, c.rounds, c.eval_every, c.checkpoint_every = 2, 2, 2, 0
    c.local_steps, c.batch_size = 1, 4
  return c

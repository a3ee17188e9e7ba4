"""English -> Spanish translation of the Bible (KJV -> Reina-Valera 1909), the offline
stand-in for the paper's WMT/T5 task: the books split into 8 genre groups, one per node
(non-IID), 80/20 train/test by verse, a from-scratch encoder-decoder with a shared BPE
vocabulary trained on the training verses, and sacrebleu BLEU of greedy decodes of a fixed
set of test verses at every eval (plus per-token loss/accuracy). Data (once)::

    python -m experiments.data.fetch bible-translation     # installs diatheke if needed

    python -m experiments.main --config configs/bible_translation.py --workdir runs/bt

Variants: ``runlocal`` (a 2-core CPU in about a minute), ``study`` (the committed CPU
comparison in experiments/results/translation/), ``iid`` (the same verses dealt out at
random, the IID control), ``beam`` (beam search of width 4 in the BLEU eval).
"""

from configs.common import REAL_METHODS, base_config, model_section, parse_variants


def get_config(arg: str = ""):
  v = parse_variants(arg, {"runlocal", "study", "iid", "beam"}, "configs/bible_translation.py")
  c = base_config()
  c.task = "bible_translation"
  c.data = dict(
    partition="genre",
    vocab_size=8000,
    max_len=64,
    limit=0,
    test_limit=0,
    bleu_examples=1000,
    beam_size=1,
  )
  c.model = model_section(
    "seq2seq", d_model=256, num_heads=4, encoder_layers=3, decoder_layers=3, mlp_dim=1024
  )
  c.method = "bi2clip"
  c.tuned[c.method] = dict(  # the tuned point of the config's method
    inner_lr=0.1, inner_upper=1.0, inner_lower=1e-4, outer_lr=1.0, outer_upper=0.01
  )
  c.clients = 8
  c.local_steps = 8
  c.batch_size = 32
  c.rounds = 1000
  c.eval_every = 50
  c.eval_batch_size = 256
  c.report_metric, c.report_mode = "eval/bleu", "max"
  c.sweep.methods = REAL_METHODS
  if "study" in v:  # CPU-sized: a small model, 100 rounds
    c.data.vocab_size, c.data.max_len, c.data.bleu_examples = 2000, 32, 256
    c.data.test_limit = 1024
    c.model.kwargs.update(d_model=64, num_heads=4, encoder_layers=1, decoder_layers=1, mlp_dim=256)
    c.rounds, c.eval_every, c.checkpoint_every = 100, 25, 0
    c.local_steps, c.batch_size = 4, 16
    # FedAvg against Bi2Clip (outer lower threshold 1e-3, the registry's default), grids
    # around the points the pre-rules study kept (FedAvg lr 1; Bi2Clip lr 1, u 0.01); the
    # sweep extends any edge point.
    c.sweep.methods = ["fedavg", "bi2clip"]
    c.sweep.grids = {
      "fedavg": ["hparams.inner_lr=0.1,0.3,1.0,3.0"],
      "bi2clip": ["hparams.inner_lr=0.3,1.0,3.0", "hparams.outer_upper=0.003,0.01,0.03"],
    }
  if "runlocal" in v:
    c.data.vocab_size, c.data.max_len, c.data.bleu_examples = 2000, 32, 256
    c.data.test_limit = 1024
    c.model.kwargs.update(d_model=64, num_heads=2, encoder_layers=1, decoder_layers=1, mlp_dim=128)
    c.rounds, c.eval_every, c.checkpoint_every = 20, 20, 0
    c.local_steps, c.batch_size = 2, 8
  if "iid" in v:
    c.data.partition = "iid"
  if "beam" in v:
    c.data.beam_size = 4
  return c

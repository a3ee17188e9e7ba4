"""SmolLM2-135M (Llama architecture; 4-bit GGUF dequantised to fp32) fine-tuned as a causal
LM on the Gutenberg-8 works, one work per node.

The offline stand-in for the paper's Qwen2.5 on SQuAD (with internet, configs/squad.py).

    python -m experiments.main --config configs/smollm2.py --workdir runs/smollm2

Variants: ``runlocal`` (2 layers of the pretrained stack, the last one trained).
"""

from configs.common import REAL_METHODS, base_config, model_section, parse_variants


def get_config(arg: str = ""):
  v = parse_variants(arg, {"runlocal"}, "configs/smollm2.py")
  c = base_config()
  c.task = "smollm2_text"
  # encode_once: the frozen embedding and first blocks run once per sequence, not per step
  # (the same function of the trained blocks; experiments.models.llama.split_at_frozen).
  c.data = dict(
    seq_len=128, max_chars_per_work=200_000, stride=128, test_stride=512, encode_once=True
  )
  c.model = model_section("smollm2", trainable="last_n_layers:4")
  c.method = "bi2clip"
  c.tuned[c.method] = dict(  # the tuned point of the config's method
    inner_lr=1e-4,
    inner_upper=1.0,
    inner_lower=1e-6,
    outer_lr=1.0,
    outer_upper=1e-3,
    outer_lower=0.0,
  )
  c.clients = 8
  c.local_steps = 4
  c.batch_size = 8
  c.rounds = 100
  c.eval_every = 10
  c.eval_batch_size = 32
  c.report_metric, c.report_mode = "eval/loss", "min"
  c.sweep.methods = REAL_METHODS
  if "runlocal" in v:
    c.model.kwargs.update(trainable="last_n_layers:1", num_layers=2)
    c.data.seq_len, c.data.max_chars_per_work, c.data.stride = 32, 3000, 32
    c.data.test_stride = 64
    c.rounds, c.eval_every, c.checkpoint_every = 2, 2, 0
    c.local_steps, c.batch_size, c.eval_batch_size = 1, 2, 16
  return c

"""SQuAD v1.1 (tensorflow-datasets ``squad``) fine-tuning of a Llama decoder (SmolLM2-135M
from its GGUF) as a causal LM on "Context/Question/Answer:" prompts, loss on the answer.

The paper fine-tunes Qwen2.5; the decoder code is Llama-architecture (Qwen2.5 differs by
QKV biases). Needs the dataset prepared once with internet; offline: configs/smollm2.py.

    python -m experiments.main --config configs/squad.py --workdir runs/squad

Variants: ``runlocal``.
"""

from configs.common import REAL_METHODS, base_config, model_section, parse_variants


def get_config(arg: str = ""):
  v = parse_variants(arg, {"runlocal"}, "configs/squad.py")
  c = base_config()
  c.task = "squad"
  c.data = dict(max_len=384, limit=0, data_dir="")
  c.model = model_section("smollm2", trainable="last_n_layers:4")
  c.method = "bi2clip"
  c.tuned[c.method] = dict(  # the tuned point of the config's method
    inner_lr=1e-4, inner_upper=1.0, inner_lower=1e-6, outer_lr=1.0, outer_upper=1e-3
  )
  c.clients = 8
  c.local_steps = 4
  c.batch_size = 4
  c.rounds = 200
  c.eval_every = 20
  c.eval_batch_size = 16
  c.report_metric, c.report_mode = "eval/loss", "min"
  c.sweep.methods = REAL_METHODS
  if "runlocal" in v:
    c.model.kwargs.update(trainable="last_n_layers:1", num_layers=2)
    c.data.max_len, c.data.limit = 48, 16
    c.clients, c.rounds, c.eval_every, c.checkpoint_every = 2, 2, 2, 0
    c.local_steps, c.batch_size, c.eval_batch_size = 1, 2, 8
  return c

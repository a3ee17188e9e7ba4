"""MiniLM-BERT (all-MiniLM-L6-v2, 22.7M parameters) fine-tuned on rotten-tomatoes movie-review
sentences (SST-2's source domain) binarised by the sign of the human score.

The offline stand-in for the paper's RoBERTa on GLUE. Variant ``domains`` uses the four
VADER domains (movie, tweets, Amazon, NYT), one per client: a natural non-IID split.

    python -m experiments.main --config configs/movie_reviews.py --workdir runs/mr

Variants: ``domains``, ``runlocal``, ``study`` (the committed CPU study: head + last
encoder layer trained, shorter sequences, fewer rounds).
"""

from configs.common import (
  REAL_METHODS,
  balanced_step_time,
  base_config,
  model_section,
  parse_variants,
)

# all-MiniLM-L6-v2's classification head: a 384 x 2 kernel and 2 biases.
HEAD_PARAMS = 384 * 2 + 2


def get_config(arg: str = ""):
  v = parse_variants(arg, {"domains", "runlocal", "study", "wallclock"}, "configs/movie_reviews.py")
  c = base_config()
  c.task = "movie_reviews"
  if "domains" in v:
    c.data = dict(
      partition="domain",
      domains=("movie", "tweets", "amazon", "nyt"),
      beta=0.5,
      max_len=64,
      limit=0,
    )
    c.clients = 4
  else:
    c.data = dict(partition="iid", domains=("movie",), beta=0.5, max_len=64, limit=0)
    c.clients = 8
  c.model = model_section("bert", trainable="all")
  c.method = "bi2clip"
  c.tuned[c.method] = dict(  # the tuned point of the config's method
    inner_lr=1e-3,
    inner_upper=1.0,
    inner_lower=1e-5,
    outer_lr=1.0,
    outer_upper=0.01,
    outer_lower=0.0,
  )
  c.local_steps = 8
  c.batch_size = 16
  c.rounds = 200
  c.eval_every = 20
  c.eval_batch_size = 256
  c.report_metric, c.report_mode = "eval/accuracy", "max"
  c.sweep.methods = REAL_METHODS
  c.sweep.grids = {
    "fedavg": ["hparams.inner_lr=0.01,0.03,0.1"],
    "avg-l2clip": ["hparams.inner_lr=0.01,0.03,0.1", "hparams.inner_upper=1.0"],
    "adam-sgd": ["hparams.inner_lr=0.01,0.03", "hparams.outer_lr=0.001,0.003"],
    "diloco": ["hparams.inner_lr=0.0001,0.0003", "hparams.outer_lr=0.7"],
    "adam2": ["hparams.inner_lr=0.0001,0.0003", "hparams.outer_lr=0.001,0.003"],
    "bi2clip": ["hparams.inner_lr=0.001,0.003,0.01", "hparams.outer_upper=0.003,0.01"],
  }
  if "study" in v:
    c.model.kwargs.update(trainable="last_n_layers:1")
    c.data.max_len, c.data.limit = 24, 2000
    c.rounds, c.eval_every, c.checkpoint_every = 15, 5, 0
    c.local_steps, c.batch_size, c.clients = 2, 8, 4
    # A 4-point grid on each method's main axis, the other hyperparameters fixed at the
    # points the pre-rules study kept; the sweep extends any edge point.
    c.sweep.grids = {
      "fedavg": ["hparams.inner_lr=0.01,0.03,0.1,0.3"],
      "avg-l2clip": ["hparams.inner_lr=0.01,0.03,0.1,0.3"],
      "adam-sgd": ["hparams.inner_lr=0.03", "hparams.outer_lr=0.0003,0.001,0.003,0.01"],
      "diloco": ["hparams.inner_lr=0.0001,0.0003,0.001,0.003"],
      "adam2": ["hparams.inner_lr=0.0001", "hparams.outer_lr=0.0003,0.001,0.003,0.01"],
      "bi2clip": ["hparams.inner_lr=0.01", "hparams.outer_upper=0.0003,0.001,0.003,0.01"],
    }
  if "wallclock" in v:
    wallclock(c)
  if "runlocal" in v:
    c.model.kwargs.update(trainable="head")
    c.data.max_len, c.data.limit = 24, 200
    c.rounds, c.eval_every, c.checkpoint_every = 3, 3, 0
    c.local_steps, c.batch_size, c.eval_batch_size = 2, 4, 64
    c.clients = min(c.clients, 4)
  return c


def wallclock(c) -> None:
  """The wall-clock study's setting (experiments/results/wallclock, experiments.wallclock):
  the asynchronous movie-review study's task (configs/async_movie_reviews.py:study: the head
  trained on encoded sentences, 4,000 sentences of at most 32 tokens, 8 clients, z = 2 of
  batch 8), 100-round tuning runs evaluated every 5 rounds on one device, and a clock whose
  fast worker computes a round in the time the float32 head takes to go up and down a
  1 Gb/s link (the tuning bandwidth)."""
  c.model.kwargs.update(trainable="head")
  c.data.encode_once = True
  c.data.max_len, c.data.limit = 32, 4000
  c.clients, c.local_steps, c.batch_size = 8, 2, 8
  c.rounds, c.eval_every, c.checkpoint_every = 100, 5, 0
  c.devices = 1
  c.clock.base_step_time = balanced_step_time(HEAD_PARAMS, c.local_steps)
  c.network.bandwidth_gbps = 1.0

"""Asynchronous TailOPT on the movie-review sentences (MiniLM-BERT) on a simulated clock.

    python -m experiments.main --config configs/async_movie_reviews.py --workdir runs/amr
    python -m experiments.main --config configs/async_movie_reviews.py:runlocal --workdir /tmp/m
    python -m experiments.main --config configs/async_movie_reviews.py:fedbuff,study \\
        --workdir /tmp/fb --config.clock.straggler_slowdown=16

The task part is ``configs/movie_reviews.py`` (all-MiniLM-L6-v2 with a classification head on
the rotten-tomatoes sentences binarised by the sign of the human score: the offline stand-in
for the paper's BERT/GLUE; needs the ``vader`` and ``minilm`` artifacts, fetched by
``experiments.data.fetch``); the async part is :func:`configs.async_common.async_fields`.
Default: async Bi²Clip, scheme A (K = 4) of N = 8 workers, 2 of them 4x slower, z = 4 local
steps of batch 16, the head and the last encoder layer trained, 300 server steps,
evaluation every 50 simulated seconds.

Variants: ``runlocal`` (seconds: 200 sentences, the head only), ``study`` (the committed CPU
study's size: 2,000 sentences of at most 24 tokens, the head only, batch 8, z = 2; see
``python -m experiments.async_study --family movie_reviews``), ``domains`` (the four VADER domains,
N = 4, one per worker: a natural non-IID split), and the protocol/baseline variants of
``configs/async_synthetic.py``: ``scheme_b``, ``sync``, ``drop``, ``quorum``, ``rate``, ``comp``,
``fedasync``, ``fedbuff``, ``dcasgd``, ``async_local_sgd``, ``fedavg``.
"""

from configs import movie_reviews
from configs import async_common
from configs.common import parse_variants


def get_config(arg: str = ""):
  protocol = set(async_common.PROTOCOL_VARIANTS) | set(async_common.BASELINE_VARIANTS)
  v = parse_variants(
    arg, protocol | {"runlocal", "study", "domains"}, "configs/async_movie_reviews.py"
  )
  c = movie_reviews.get_config(",".join(sorted({"domains"} & v)))
  c = async_common.async_fields(c)
  c.sweep = c.sweep.to_dict() | {"methods": [], "grids": {}}  # not used by the async runner
  c.model.kwargs.update(trainable="last_n_layers:1")
  c.data.max_len, c.data.limit = 32, 4000
  c.data.encode_once = False  # True (head only): the frozen encoder runs once per example
  c.local_steps, c.batch_size = 4, 16
  c.server_steps, c.eval_every, c.eval_every_time = 300, 0, 50.0
  c.chunk, c.checkpoint_every = 20, 100
  c.asynchronous.buffer_size = 4 if c.clients >= 8 else 2
  c.clock.straggler_fraction, c.clock.straggler_slowdown = 0.25, 4.0
  if "study" in v:
    c.model.kwargs.update(trainable="head")
    c.data.encode_once = True
    c.data.max_len, c.data.limit = 32, 4000
    c.local_steps, c.batch_size = 2, 8
    c.devices, c.checkpoint_every, c.progress = 0, 0, False
  if "runlocal" in v:
    c.model.kwargs.update(trainable="head")
    c.data.encode_once = True
    c.data.max_len, c.data.limit = 24, 200
    c.local_steps, c.batch_size, c.eval_batch_size = 2, 4, 64
    c.server_steps, c.chunk, c.eval_every, c.eval_every_time = 8, 4, 4, 0.0
    c.checkpoint_every = 8
  async_common.apply_variants(c, v, baseline_lr=0.01)
  return c

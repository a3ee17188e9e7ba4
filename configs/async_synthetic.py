"""Asynchronous TailOPT on the synthetic heavy-tailed tasks, on a simulated clock.

    python -m experiments.main --config configs/async_synthetic.py --workdir /tmp/async
    python -m experiments.main --config configs/async_synthetic.py:runlocal --workdir /tmp/a
    python -m experiments.main --config configs/async_synthetic.py:fedbuff,runlocal \\
        --workdir /tmp/fb --config.clock.straggler_slowdown=16

The task part is ``configs/synthetic.py`` (least squares by default, ``mlp`` for the
classifier, heavy-tailed stable(alpha=1.5) gradient noise); the async part is
:func:`configs.async_common.async_fields` (``config.clock``, ``config.asynchronous``).
Default: async Bi²Clip, scheme A (buffered, K = N/2), N = 8 workers of which a quarter are
stragglers 4x slower, log-normal job noise, z = 5 local steps.

Variants (after the colon, comma-separated):

* task: ``least_squares`` (default), ``mlp``, ``logistic``;
* size: ``runlocal`` (seconds), ``study`` (the committed study's size);
* protocol of async Bi²Clip: ``scheme_b`` (K = 1), ``sync`` (wait-for-all on the same clock),
  ``drop`` (fastest K), ``quorum`` (the quorum server, Q = N/2 of a cap K = N, grace window
  median + 3 MAD), ``rate`` (delay-aware polynomial rate, a = 0.5), ``comp`` (adaptive delay
  compensation);
* baselines (library presets, ``configs.async_common.apply_preset``): ``fedasync``,
  ``fedbuff``, ``dcasgd``, ``async_local_sgd``, ``fedavg`` (synchronous FedAvg on the clock).
"""

from configs import synthetic
from configs import async_common
from configs.common import parse_variants

TASKS = {"least_squares", "mlp", "logistic"}


def get_config(arg: str = ""):
  protocol = set(async_common.PROTOCOL_VARIANTS) | set(async_common.BASELINE_VARIANTS)
  v = parse_variants(arg, TASKS | protocol | {"runlocal", "study"}, "configs/async_synthetic.py")
  c = synthetic.get_config(",".join(sorted(v & (TASKS | {"runlocal"}))))
  c = async_common.async_fields(c)
  c.sweep = c.sweep.to_dict() | {"methods": [], "grids": {}}  # not used by the async runner
  # Pinned here (the values of configs/synthetic.py when the async study was run), so the
  # committed study does not move when the synchronous config's defaults do.
  c.synthetic.dim, c.synthetic.partition, c.synthetic.heterogeneity = (
    50,
    ("dirichlet" if c.synthetic.task == "mlp" else "shift"),
    1.0,
  )
  c.synthetic.examples_per_client, c.synthetic.test_examples = 1024, 4096
  c.noise.distribution, c.noise.alpha, c.noise.scale = "stable", 1.5, 1.0
  c.method = "bi2clip"
  c.tuned[c.method] = dict(  # the tuned point of the config's method
    inner_lr=0.05, inner_upper=1.0, inner_lower=0.01, outer_lr=1.0, outer_upper=0.5, outer_lower=0.0
  )
  c.clients, c.local_steps, c.batch_size = 8, 5, 16
  c.server_steps = 200
  c.eval_every = 25
  c.checkpoint_every = 100
  c.asynchronous.buffer_size = 4
  c.clock.straggler_fraction = 0.25
  c.clock.straggler_slowdown = 4.0
  if "runlocal" in v:
    c.server_steps, c.eval_every, c.checkpoint_every = 24, 8, 8
    c.synthetic.examples_per_client, c.synthetic.test_examples = 128, 512
    c.local_steps = 2
  if "study" in v:
    c.devices, c.checkpoint_every, c.progress = 0, 0, False
  async_common.apply_variants(c, v, baseline_lr=0.01)
  return c

"""Asynchronous TailOPT on Fashion-MNIST (CNN, reduced) on a simulated clock.

    python -m experiments.main --config configs/async_fashion_mnist.py --workdir runs/afm
    python -m experiments.main --config configs/async_fashion_mnist.py:runlocal --workdir /tmp/f
    python -m experiments.main --config configs/async_fashion_mnist.py:fedbuff,dirichlet \\
        --workdir /tmp/fb --config.clock.straggler_slowdown=16

The task part is ``configs/fashion_mnist.py`` with the CNN (the offline stand-in for the
paper's ViT on CIFAR; needs the Debian ``dataset-fashion-mnist`` artifact, fetched by
``experiments.data.fetch``), reduced to 16,000 training / 2,000 test images by default; the
async part is :func:`configs.async_common.async_fields`. Default: async Bi²Clip, scheme A
(K = 4) of N = 8 workers, 2 of them 4x slower, z = 8 local steps, 400 server steps,
evaluation every 100 simulated seconds.

Variants: ``runlocal`` (seconds: 800 images, a tiny CNN), ``study`` (the committed CPU
study's size: 4,000 / 1,000 images, CNN with 8 and 16 channels, z = 2 local steps of batch
16; see ``python -m experiments.async_study --family fashion_mnist``), ``vit`` (the small ViT instead of
the CNN), ``dirichlet`` (label skew), and the protocol/baseline variants of
``configs/async_synthetic.py``: ``scheme_b``, ``sync``, ``drop``, ``quorum``, ``rate``, ``comp``,
``fedasync``, ``fedbuff``, ``dcasgd``, ``async_local_sgd``, ``fedavg``.
"""

from configs import fashion_mnist
from configs import async_common
from configs.common import parse_variants


def get_config(arg: str = ""):
  protocol = set(async_common.PROTOCOL_VARIANTS) | set(async_common.BASELINE_VARIANTS)
  v = parse_variants(
    arg, protocol | {"runlocal", "study", "vit", "dirichlet"}, "configs/async_fashion_mnist.py"
  )
  base = {"runlocal", "dirichlet"} & v | ({"vit"} if "vit" in v else {"cnn"})
  c = fashion_mnist.get_config(",".join(sorted(base)))
  c = async_common.async_fields(c)
  c.sweep = c.sweep.to_dict() | {"methods": [], "grids": {}}  # not used by the async runner
  c.data.limit, c.data.test_limit = 16000, 2000
  c.server_steps, c.eval_every, c.eval_every_time = 400, 0, 100.0
  c.chunk, c.checkpoint_every = 20, 100
  c.asynchronous.buffer_size = 4
  c.clock.straggler_fraction, c.clock.straggler_slowdown = 0.25, 4.0
  if "study" in v:  # the CPU study: python -m experiments.async_study --family fashion_mnist
    c.data.limit, c.data.test_limit = 4000, 1000
    c.model.kwargs.update(channels=(8, 16), hidden=32)
    c.local_steps, c.batch_size = 2, 16
    c.devices, c.checkpoint_every, c.progress = 0, 0, False
  if "runlocal" in v:
    c.data.limit, c.data.test_limit = 800, 200
    c.server_steps, c.chunk, c.eval_every, c.eval_every_time = 12, 4, 4, 0.0
    c.checkpoint_every = 8
  async_common.apply_variants(c, v, baseline_lr=0.05)
  return c

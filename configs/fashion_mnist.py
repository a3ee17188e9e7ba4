"""Fashion-MNIST (60k/10k, Debian dataset-fashion-mnist) with a small ViT or a CNN.

The offline stand-in for the paper's ImageNet-pretrained ViT-base on CIFAR-100.

    python -m experiments.main --config configs/fashion_mnist.py --workdir runs/fmnist
    python -m experiments.main --config configs/fashion_mnist.py:cnn,runlocal --workdir /tmp/f

Variants: ``vit`` (default), ``cnn``, ``dirichlet`` (label skew, beta=0.3), ``runlocal``,
``study`` (the committed CPU study: reduced data and rounds).
"""

from configs.common import REAL_METHODS, base_config, model_section, parse_variants


def get_config(arg: str = ""):
  v = parse_variants(
    arg, {"vit", "cnn", "dirichlet", "runlocal", "study"}, "configs/fashion_mnist.py"
  )
  c = base_config()
  c.task = "fashion_mnist"
  c.data = dict(
    partition="dirichlet" if "dirichlet" in v else "iid", beta=0.3, limit=0, test_limit=0
  )
  if "cnn" in v:
    c.model = model_section("cnn", channels=(32, 64), hidden=128)
  else:
    c.model = model_section("vit", patch=7, dim=64, depth=4, heads=4, mlp_dim=128)
  c.method = "bi2clip"
  c.tuned[c.method] = dict(  # the tuned point of the config's method
    inner_lr=0.05, inner_upper=1.0, inner_lower=1e-3, outer_lr=1.0, outer_upper=0.1, outer_lower=0.0
  )
  c.clients = 8
  c.local_steps = 8
  c.batch_size = 32
  c.rounds = 300
  c.eval_every = 25
  c.eval_batch_size = 1000
  c.report_metric, c.report_mode = "eval/accuracy", "max"
  c.sweep.methods = REAL_METHODS
  c.sweep.grids = {
    "fedavg": ["hparams.inner_lr=0.03,0.1,0.3"],
    "avg-l2clip": ["hparams.inner_lr=0.03,0.1,0.3", "hparams.inner_upper=1.0"],
    "adam-sgd": ["hparams.inner_lr=0.03,0.1", "hparams.outer_lr=0.003,0.01"],
    "diloco": ["hparams.inner_lr=0.001,0.003", "hparams.outer_lr=0.7"],
    "adam2": ["hparams.inner_lr=0.001,0.003", "hparams.outer_lr=0.003,0.01"],
    "bi2clip": ["hparams.inner_lr=0.01,0.03,0.1", "hparams.outer_upper=0.03,0.1"],
  }
  if "study" in v:
    c.data.limit, c.data.test_limit = 16000, 2000
    c.rounds, c.eval_every, c.checkpoint_every = 40, 5, 0
    c.local_steps = 4
    # 4-point grids on each method's main axis (the other hyperparameters fixed at the
    # points the first 2-point pass kept); the sweep extends any edge point.
    c.sweep.grids = {
      "fedavg": ["hparams.inner_lr=0.01,0.03,0.1,0.3"],
      "avg-l2clip": ["hparams.inner_lr=0.03,0.1,0.3,1.0"],
      "adam-sgd": ["hparams.inner_lr=0.05", "hparams.outer_lr=0.001,0.003,0.01,0.03"],
      "diloco": ["hparams.inner_lr=0.0001,0.0003,0.001,0.003"],
      "adam2": ["hparams.inner_lr=0.001", "hparams.outer_lr=0.0003,0.001,0.003,0.01"],
      "bi2clip": ["hparams.inner_lr=0.05", "hparams.outer_upper=0.003,0.01,0.03,0.1"],
    }
  if "runlocal" in v:
    c.data.limit, c.data.test_limit = 800, 200
    c.model.kwargs.update(
      dict(depth=1, dim=32, mlp_dim=64)
      if c.model.name == "vit"
      else dict(channels=(8, 16), hidden=32)
    )
    c.rounds, c.eval_every, c.checkpoint_every = 4, 2, 2
    c.local_steps, c.batch_size = 2, 16
  return c

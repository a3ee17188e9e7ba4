"""CIFAR-100 (tensorflow-datasets ``cifar100``) with a ViT: the paper's image task.

The paper fine-tunes an ImageNet-pretrained ViT-base; pretrained ViT weights are not in
this offline registry set, so the model here is a ViT trained from scratch (offline
stand-in: configs/fashion_mnist.py). Needs the dataset prepared once with internet.

    python -m experiments.main --config configs/cifar100.py --workdir runs/c100

Variants: ``dirichlet``, ``runlocal``.
"""

from configs.common import REAL_METHODS, base_config, model_section, parse_variants


def get_config(arg: str = ""):
  v = parse_variants(arg, {"dirichlet", "runlocal"}, "configs/cifar100.py")
  c = base_config()
  c.task = "cifar100"
  c.data = dict(
    partition="dirichlet" if "dirichlet" in v else "iid", beta=0.3, limit=0, data_dir=""
  )
  c.model = model_section("vit", patch=4, dim=192, depth=6, heads=3, mlp_dim=384)
  c.method = "bi2clip"
  c.tuned[c.method] = dict(  # the tuned point of the config's method
    inner_lr=0.03, inner_upper=1.0, inner_lower=1e-3, outer_lr=1.0, outer_upper=0.03
  )
  c.clients = 8
  c.local_steps = 8
  c.batch_size = 64
  c.rounds = 1000
  c.eval_every = 50
  c.report_metric, c.report_mode = "eval/accuracy", "max"
  c.sweep.methods = REAL_METHODS
  if "runlocal" in v:
    c.model.kwargs.update(patch=8, dim=32, depth=1, heads=2, mlp_dim=64)
    c.data.limit = 64
    c.clients, c.rounds, c.eval_every, c.checkpoint_every = 4, 2, 2, 0
    c.local_steps, c.batch_size = 1, 4
  return c

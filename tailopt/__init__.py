"""tailopt: distributed optimization under heavy-tailed gradient noise, in JAX/Optax.

TailOPT and Bi²Clip (Lee, Zaheer & Li, ICML 2025) and their asynchronous variants
(Sun et al., 2026). Every optimizer here is an ``optax.GradientTransformation``, and any
``optax.GradientTransformation`` can be the inner or the outer rule of a round.
"""

from tailopt import compression
from tailopt.client_store import ClientStateStore
from tailopt.clipping import (
  ClipMonitorState,
  ClipState,
  bi_clip,
  bi_clip_array,
  clip_fractions,
  global_norm,
  l2_clip,
  measurements,
  monitor_clip,
)
from tailopt.local import LocalResult, make_local_run
from tailopt.methods import (
  INNER_RULES,
  OUTER_RULES,
  Method,
  default_hyperparameters,
  get_method,
  known_methods,
  method_hyperparameters,
)
from tailopt.noise import (
  DISTRIBUTIONS,
  InjectNoiseState,
  hill_estimator,
  inject_noise,
  noise_tail_index,
  sample_noise,
  stable_tail_index,
)
from tailopt.outer import (
  ScaleByFedOptState,
  fedopt_adagrad,
  fedopt_adam,
  fedopt_rmsprop,
  fedopt_yogi,
  scale_by_fedopt,
)
from tailopt.rounds import Round, RoundState, build_round, client_mesh, model_spec
from tailopt.schedules import IndexedHyperparamsState, indexed_hyperparams, power_law, round_indexed
from tailopt.zclip import ZClipState, zclip

__version__ = "0.2.0"

__all__ = [
  # transforms
  "bi_clip",
  "l2_clip",
  "monitor_clip",
  "zclip",
  "inject_noise",
  "scale_by_fedopt",
  "fedopt_adagrad",
  "fedopt_rmsprop",
  "fedopt_adam",
  "fedopt_yogi",
  # their states
  "ClipState",
  "ClipMonitorState",
  "InjectNoiseState",
  "ScaleByFedOptState",
  "IndexedHyperparamsState",
  "ZClipState",
  # schedules
  "power_law",
  "round_indexed",
  "indexed_hyperparams",
  # methods
  "Method",
  "get_method",
  "known_methods",
  "method_hyperparameters",
  "default_hyperparameters",
  "INNER_RULES",
  "OUTER_RULES",
  # rounds
  "build_round",
  "Round",
  "RoundState",
  "client_mesh",
  "model_spec",
  "make_local_run",
  "LocalResult",
  "ClientStateStore",
  # communication (tailopt.compression: quantizers, error feedback)
  "compression",
  # utilities
  "bi_clip_array",
  "clip_fractions",
  "global_norm",
  "measurements",
  "sample_noise",
  "DISTRIBUTIONS",
  "hill_estimator",
  "stable_tail_index",
  "noise_tail_index",
]

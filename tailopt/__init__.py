"""tailopt: distributed optimization under heavy-tailed gradient noise, in JAX/Optax.

TailOPT and Bi²Clip (Lee, Zaheer & Li, ICML 2025) and their asynchronous variants
(Sun et al., 2026). Every optimizer here is an ``optax.GradientTransformation``.
"""

from tailopt.clipping import ClipState, bi_clip, bi_clip_array, global_norm, l2_clip
from tailopt.local import LocalResult, make_local_run
from tailopt.methods import (ALIASES, DEFAULTS, INNER_RULES, OUTER_RULES, ClipSpec, Method,
                             get_method, known_methods)
from tailopt.noise import (DISTRIBUTIONS, InjectNoiseState, hill_estimator, inject_noise,
                           sample_noise, stable_tail_index)
from tailopt.outer import (ScaleByFedOptState, fedopt_adagrad, fedopt_adam, fedopt_rmsprop,
                           fedopt_yogi, scale_by_fedopt)
from tailopt.rounds import Round, RoundState, build_round, client_mesh
from tailopt.schedules import power_law, round_indexed

__version__ = "0.1.0"

r"""Asynchronous heavy-tailed optimization on a simulated clock.

Implements the setting of Sun, Yao, Gong, Rabbani, Zaheer & Li, "Asynchronous Heavy-Tailed
Optimization" (arXiv 2602.18002, 2026) on top of TailOPT / Bi²Clip (Lee, Zaheer & Li, ICML
2025). Only that paper's abstract is available, so the protocol below is built from the prior
work it names and every choice of ours is an option (spec ``async.md``):

* :class:`ClockConfig` / :func:`make_schedule` -- workers' speeds, per-job noise and latency;
  a reproducible event schedule from a seed (:mod:`.clock`). Staleness
  :math:`\tau` = server version at apply - version pulled.
* :class:`AsyncConfig` -- scheme A (``'buffered'``, K arrivals per outer step), scheme B
  (``'async'``, K = 1), and the synchronous baselines ``'sync'`` (wait for all),
  ``'drop'`` (fastest K) and ``'deadline'`` on the same clock (:mod:`.server`).
* :class:`RateConfig` -- delay-aware rates :math:`s(\tau)`: constant, polynomial
  :math:`(1+\tau)^{-a}` (FedAsync, Xie et al. 2019; FedBuff, Nguyen et al. 2022), hinge
  (FedAsync), inverse, threshold :math:`\min(1, \tau_C/\tau)` (Koloskova et al. 2022), drop;
  buffer reduction max/mean/weights; the scale multiplies the learning rate after the outer
  clip by default (:mod:`.staleness`).
* :class:`CompensationConfig` -- DC-ASGD delay compensation (Zheng et al. 2017)
  :math:`\Delta + \lambda\Delta\odot\Delta\odot(x_\text{now} - x_\text{pulled})`, constant or
  adaptive :math:`\lambda`, compensate-then-clip by default (:mod:`.compensation`).
* Baselines (:mod:`.baselines`): :func:`fedasync`, :func:`fedbuff`, :func:`dcasgd`,
  :func:`async_local_sgd` (Delayed Nesterov + dynamic local updates, Liu et al. 2024,
  arXiv 2401.09135).
* :class:`Simulator` -- runs any tailopt method; jobs pulled at the same version run together
  (vmapped in pieces of power-of-two widths so no empty slot is computed, :mod:`.waves`;
  optionally across devices), whole chunks of server steps run in one jitted ``lax.scan``;
  ``state_dict``/``load_state_dict`` for resuming mid-run (:mod:`.simulator`).
"""

from tailopt.asynchronous.baselines import (
  PRESETS,
  AsyncSetup,
  DelayedNesterovState,
  async_local_sgd,
  dcasgd,
  delayed_nesterov,
  fedasync,
  fedbuff,
)
from tailopt.asynchronous.clock import (
  JOB_NOISE,
  SCHEMES,
  SPEED_MODELS,
  ClockConfig,
  Schedule,
  dynamic_local_steps,
  make_schedule,
)
from tailopt.asynchronous.compensation import (
  CompensationConfig,
  adaptive_lambda,
  compensate,
  memory_report,
  update_mean_square,
)
from tailopt.asynchronous.server import AsyncConfig, server_update
from tailopt.asynchronous.simulator import SimState, Simulator
from tailopt.asynchronous.staleness import (
  FAMILIES,
  REDUCTIONS,
  RateConfig,
  reduce_staleness,
  staleness_scale,
)

__all__ = [
  "AsyncConfig",
  "AsyncSetup",
  "ClockConfig",
  "CompensationConfig",
  "DelayedNesterovState",
  "FAMILIES",
  "JOB_NOISE",
  "PRESETS",
  "REDUCTIONS",
  "RateConfig",
  "SCHEMES",
  "SPEED_MODELS",
  "Schedule",
  "SimState",
  "Simulator",
  "adaptive_lambda",
  "async_local_sgd",
  "compensate",
  "dcasgd",
  "delayed_nesterov",
  "dynamic_local_steps",
  "fedasync",
  "fedbuff",
  "make_schedule",
  "memory_report",
  "reduce_staleness",
  "server_update",
  "staleness_scale",
  "update_mean_square",
]

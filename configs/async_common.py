"""The asynchronous config schema and its variants, shared by configs/async_*.py.

``async_fields`` turns a base config (``configs.common.base_config`` + a task) into an async
one; ``apply_preset`` sets a library baseline preset; ``apply_variants`` applies the protocol
and baseline variants the async configs share. Configs never import ``experiments``.
"""

from ml_collections import config_dict

from configs.common import clock_section
from tailopt import asynchronous as A

OUTERS = ("method", "delayed_nesterov")
PRESET_NAMES = tuple(sorted(A.PRESETS))


def async_fields(c: config_dict.ConfigDict) -> config_dict.ConfigDict:
  """Turns a base config (``configs.common.base_config`` + a task) into an async one.

  Adds ``mode``, ``server_steps``, ``time_budget``, ``chunk``, ``eval_every_time``,
  ``target``, ``clock`` and ``asynchronous``; removes the synchronous-only ``rounds``,
  ``participation`` and ``weighted``. Defaults are our decisions (spec ``async.md``).
  """
  fl, it = (lambda: config_dict.placeholder(float)), (lambda: config_dict.placeholder(int))
  for k in ("rounds", "participation", "weighted"):
    if k in c:
      del c[k]
  c.mode = "async"
  c.server_steps = 200  # T, server steps (versions); see time_budget
  c.time_budget = 0.0  # > 0: T = the server steps that complete by this sim time
  c.chunk = 0  # server steps per jitted dispatch; 0 = gcd of the cadences
  c.eval_every = 25  # server steps (0 = off); a multiple of chunk
  c.eval_every_time = 0.0  # simulated seconds (0 = off)
  c.target = fl()  # report_metric target for time-to-target in the summary
  # The runtime model; N = config.clients (tailopt.asynchronous.ClockConfig): the clock of
  # configs.common (shared with synchronous runs, so both can use one time axis).
  c.clock = clock_section()
  c.clock.failure_rate = 0.0  # failures per second of a worker's up time (0: none)
  c.clock.rejoin_rate = 0.0  # rejoins per second of down time; > 0 with failures
  # The protocol (tailopt.asynchronous.AsyncConfig); local_steps = config.local_steps,
  # reset_inner_state = config.reset_inner_state.
  c.asynchronous = config_dict.ConfigDict(
    {
      "scheme": "buffered",
      "buffer_size": it(),
      "dynamic_local_steps": False,
      "ties": "batch",
      "deadline": fl(),
      "rate": {"family": "constant", "a": fl(), "b": fl(), "tau_c": fl(), "tau_max": fl()},
      "reduction": "max",
      "scale_order": "after_outer",
      "weight_normalization": "count",
      "compensation": {
        "kind": "none",
        "lam": 0.04,
        "lam0": 2.0,
        "momentum": 0.95,
        "eps": 1e-7,
        "order": "compensate_then_clip",
      },
      "pseudo_gradient": "delta",
      "snapshots": "auto",
      "min_quorum": 1,  # Q of scheme='quorum' (K = buffer_size, default N, is the cap)
      "grace_k": 3.0,  # quorum grace window: median + grace_k * MAD of recent arrival delays
      "grace_window": 0,  # recent arrivals the window is measured over; 0 = N
      "merge": "uniform",  # 'uniform', 'steps' (local steps) or 'dataset' (client sizes)
      "outer": "method",  # 'method' (the method's outer rule) or 'delayed_nesterov'
      "outer_period": 0,  # Delayed Nesterov period; 0 = N
      "preset": "",  # label of the baseline the fields came from (apply_preset)
    }
  )
  return c


def apply_preset(c: config_dict.ConfigDict, name: str, **kwargs) -> config_dict.ConfigDict:
  """Sets ``c``'s method, hyperparameters and protocol to a library baseline preset.

  The fields come from calling the preset itself (``tailopt.asynchronous.PRESETS``) with the
  config's N, z and K, plus ``kwargs`` (e.g. ``alpha=``, ``server_lr=``, ``lr=``), so a
  preset run is exactly ``Simulator(..., **preset(...))``. Later command-line overrides win.
  """
  if name not in A.PRESETS:
    raise ValueError(f"unknown preset {name!r}; choose one of {PRESET_NAMES}.")
  n, z = c.clients, c.local_steps
  a = c.asynchronous
  if name == "fedasync":
    setup = A.fedasync(local_steps=z, **kwargs)
  elif name == "fedbuff":
    setup = A.fedbuff(buffer_size=a.buffer_size or max(1, n // 2), local_steps=z, **kwargs)
  elif name == "dcasgd":
    setup = A.dcasgd(**kwargs)
  else:
    setup = A.async_local_sgd(num_workers=n, local_steps=z, **kwargs)
  m = setup.method
  c.method = m.name
  for k in list(c.hparams.keys()):
    c.hparams[k] = None
  for k in ("inner_lr", "outer_lr", "momentum"):
    if k in m.hparams:  # the hyperparameters the preset's method uses
      c.hparams[k] = float(m.hparams[k])
  d = setup.config.to_dict()
  c.local_steps = int(d.pop("local_steps"))
  c.reset_inner_state = bool(d.pop("reset_inner_state"))
  for k, v in d.items():
    if isinstance(v, dict):
      for k2, v2 in v.items():
        a[k][k2] = v2
    else:
      a[k] = v
  if setup.outer is not None:  # async_local_sgd: Delayed Nesterov
    a.outer = "delayed_nesterov"
    a.outer_period = int(kwargs.get("period") or 0)
  else:
    a.outer = "method"
  a.preset = name
  return c


PROTOCOL_VARIANTS = ("scheme_b", "sync", "drop", "quorum", "rate", "comp")
BASELINE_VARIANTS = ("fedasync", "fedbuff", "dcasgd", "async_local_sgd", "fedavg")


def apply_variants(
  c: config_dict.ConfigDict, variants, *, baseline_lr: float
) -> config_dict.ConfigDict:
  """The protocol and baseline variants shared by the async configs.

  ``scheme_b`` (K = 1), ``sync`` (wait-for-all on the same clock), ``drop`` (fastest K),
  ``quorum`` (the quorum server: a step once Q = N/2 updates are in and the grace window,
  median + 3 MAD of recent arrival delays, has passed, or once K = N are in), ``rate``
  (polynomial delay-aware rate, a = 0.5), ``comp`` (adaptive delay compensation);
  baselines ``fedasync``, ``fedbuff``, ``dcasgd``, ``async_local_sgd`` (library presets via
  :func:`apply_preset`, learning rate ``baseline_lr``) and ``fedavg`` (synchronous FedAvg on
  the clock).
  """
  v = set(variants)
  a = c.asynchronous
  if "scheme_b" in v:
    a.scheme = "async"
  if "sync" in v:
    a.scheme = "sync"
  if "drop" in v:
    a.scheme = "drop"
  if "quorum" in v:
    a.scheme, a.buffer_size, a.min_quorum = "quorum", c.clients, max(1, c.clients // 2)
  if "rate" in v:
    a.rate.family, a.rate.a = "polynomial", 0.5
  if "comp" in v:
    a.compensation.kind = "adaptive"
  if "fedavg" in v:
    c.method = "fedavg"
    for k in list(c.hparams.keys()):
      c.hparams[k] = None
    c.hparams.inner_lr = baseline_lr
    a.scheme = "sync"
  for name in ("fedasync", "fedbuff", "async_local_sgd"):
    if name in v:
      apply_preset(c, name, inner_lr=baseline_lr)
  if "dcasgd" in v:
    apply_preset(c, "dcasgd", lr=baseline_lr)
  return c

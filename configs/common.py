"""Fields every experiment config shares (imported by the configs in this folder)."""

from ml_collections import config_dict

import tailopt


def base_config() -> config_dict.ConfigDict:
  c = config_dict.ConfigDict()
  c.task = "synthetic"
  c.method = "bi2clip"
  # Method hyperparameters: one field per hyperparameter of tailopt's registry (generated
  # from tailopt.default_hyperparameters(), so the two cannot drift), all None = not set.
  # A value set here (or by --config.hparams.X) must be one the method uses.
  c.hparams = hparams_section()
  # Tuned points, per method: {method: {hyperparameter: value}}. The run uses
  # tuned[method] (if any), then the method's defaults; config.hparams overrides both.
  # So --config.method=fedavg runs with fedavg's own tuned point, never bi2clip's.
  c.tuned = config_dict.ConfigDict()
  # Heavy-tailed noise injected into every gradient before the inner rule.
  c.noise = config_dict.ConfigDict(
    {
      "distribution": "none",  # none | gaussian | student_t | stable | pareto | cauchy
      "alpha": 1.5,  # tail index (stable, pareto)
      "df": 1.5,  # degrees of freedom (student_t)
      "scale": 1.0,
    }
  )
  # What a node sends (tailopt.compression): kind none | int | fp8 | fixed (the BiClip
  # range grid, z * inner_lr * inner_upper, for BiClip inners) | fp32 | topk (the topk
  # largest of every block-coordinate chunk, with their indices; values in `bits` bits, 32 =
  # float32) | sign (1 bit, one mean-|x| scale per block); bits 2, 4, 8 (32 = no
  # compression); block: coordinates per scale (chunk); stochastic rounding; error feedback
  # (ef_decay: SparseLoCo's beta, 1 = plain EF); down: the server's broadcast (none | int |
  # fp8, at the same bits and block).
  c.compression = config_dict.ConfigDict(
    {
      "kind": "none",
      "bits": 8,
      "block": 256,
      "stochastic": False,
      "error_feedback": False,
      "ef_decay": 1.0,
      "topk": 0,
      "down": "none",
    }
  )
  # Replace the method's inner/outer transform by make(learning_rate) at its inner_lr /
  # outer_lr: a name of experiments.optax_rules.RULES (lion, sign_sgd, clip_sgd, ...) or a
  # user's 'path/to/file.py:make'; '' = the method's own rule.
  c.optax_rules = config_dict.ConfigDict({"inner": "", "outer": ""})
  c.fragments = 0  # streaming synchronization: F fragments (0 = off)
  # Overlapped streaming (tailopt.overlap; needs fragments): the synced fragment is merged
  # `delay` inner steps into the next round while the clients train on, as alpha * global +
  # (1 - alpha) * local; eager: the client's own Delta stands in until then. delay 0,
  # alpha 1, eager off = plain streaming.
  c.overlap = config_dict.ConfigDict({"delay": 0, "alpha": 1.0, "eager": False})
  # The simulated clock of every run (tailopt.timing; logged as `sim_time`): the workers'
  # compute (config.clock, the asynchronous clock's model, or a replay CSV) and the links.
  c.clock = clock_section()
  c.network = network_section()
  c.clients = 8  # clients per round (slots on the device mesh)
  c.data_clients = 0  # clients in the dataset; 0 = clients (no client sampling)
  c.participation = 0  # 0 = all slots take part; m = sample m slots per round
  c.weighted = False  # aggregate with example-count weights
  c.reset_inner_state = False  # re-init inner optimizer state each round
  c.local_steps = 4  # z
  c.batch_size = 32
  c.rounds = 200
  c.eval_every = 20
  c.eval_at_start = False  # also evaluate the initial model, logged as round 0
  c.eval_batch_size = 1024
  c.checkpoint_every = 50
  c.keep_checkpoints = 2
  c.seed = 0
  c.devices = 0  # 0 = the most devices that divide `clients`
  # Devices per client group: a model axis of that size shards each replica's parameters
  # and optimizer states FSDP-style (1 = every device holds a whole replica).
  c.mesh = config_dict.ConfigDict({"model": 1})
  # A device's clients: auto (by model size) | vmap | sequential (less memory).
  c.client_loop = "auto"
  # The outer step on 1/n of the coordinates per client device (elementwise outer rules):
  # auto | on | off (replicated, as runs checkpointed before it was added).
  c.shard_outer = "auto"
  c.chunk = 0  # rounds per jitted dispatch (one lax.scan); 0 = auto (<= 25)
  c.stop_on_nan = True  # end a diverged run early (recorded as diverged)
  c.progress = True
  c.report_metric = "eval/loss"
  c.report_mode = "min"
  # The study rules of experiments.sweep: grids {method: ["field=v1,v2,...", ...]} ("*"
  # applies to all), tuned on tune_seeds at `rounds`, the kept point reported on
  # report_seeds (at least 5, none a tuning seed) for report_rounds (0 = rounds), quality
  # tabulated at `budgets` (empty = 25/50/100% of rounds and report_rounds). A kept point on
  # a grid edge extends that axis geometrically (at most max_extensions steps per side)
  # unless bounds (["field=low,high", ...], None = open side) declares the edge.
  c.sweep = config_dict.ConfigDict(
    {
      "methods": [],
      "grids": {},
      "tune_seeds": [0],
      "report_seeds": [1, 2, 3, 4, 5],
      "report_rounds": 0,
      "budgets": [],
      "bounds": [],
      "max_extensions": 4,
      "reference": "",  # the method the others are compared with (default: bi2clip if run)
      # Conditions the kept point is also reported in (["name: field=value ...", ...]; the
      # first is the baseline the others are compared with), e.g. bit widths.
      "settings": [],
    }
  )
  return c


def clock_section() -> config_dict.ConfigDict:
  """``config.clock``: the workers' compute time (``tailopt.asynchronous.ClockConfig``;
  N = config.clients): seconds per local step (base_step_time, fixed step_times, log-normal
  or straggler speeds), per-job noise, a fixed latency, and ``replay``: a CSV of measured
  ``worker,job,seconds`` that replaces the model (both engines)."""
  return config_dict.ConfigDict(
    {
      "speeds": "stragglers",
      "step_times": config_dict.placeholder(tuple),
      "base_step_time": 1.0,
      "speed_sigma": 0.5,
      "straggler_fraction": 0.25,
      "straggler_slowdown": 4.0,
      "job_noise": "lognormal",
      "noise_sigma": 0.25,
      "comm_latency": 0.0,
      "seed": 0,
      "replay": "",
    }
  )


def balanced_step_time(num_params: int, local_steps: int, gbps: float = 1.0) -> float:
  """Seconds of one local step at which a round's compute (``local_steps`` steps of a fast
  worker) lasts as long as sending and receiving the float32 model (``num_params`` x 4 bytes
  each way) over ``gbps`` Gb/s links: the wall-clock study's clock (our choice: at 1 Gb/s an
  uncompressed round is half compute, half transfer, so 0.1 Gb/s is transfer-bound and
  100 Gb/s compute-bound)."""
  return 2 * num_params * 4 * 8 / (gbps * 1e9) / local_steps


def network_section() -> config_dict.ConfigDict:
  """``config.network`` (``tailopt.timing.NetworkConfig``): Gb/s of every link (0 = free),
  per-client uplink/downlink Gb/s (tuples, None = bandwidth_gbps), one-way latency in ms,
  and the server step's seconds. Simulated from the bytes a round sends, not measured."""
  return config_dict.ConfigDict(
    {
      "bandwidth_gbps": 0.0,
      "uplink_gbps": config_dict.placeholder(tuple),
      "downlink_gbps": config_dict.placeholder(tuple),
      "latency_ms": 0.0,
      "server_step_s": 0.0,
    }
  )


def hparams_section() -> config_dict.ConfigDict:
  """``config.hparams``: a placeholder per hyperparameter of ``tailopt``'s registry.

  Power-law schedules of the round (eta_t = eta_0 t^nu, u_t = u_0 t^zeta, d_t = d_0 t^gamma,
  inner and outer) are the ``*_exponent`` fields, e.g. ``--config.hparams.inner_lr_exponent
  =-0.5``.
  """
  fields = {}
  for k, v in tailopt.default_hyperparameters().items():
    kind = str if k == "inner_schedule" else bool if isinstance(v, bool) else float
    fields[k] = config_dict.placeholder(kind)
  return config_dict.ConfigDict(fields)


def model_section(name: str, **kwargs) -> config_dict.ConfigDict:
  """``config.model``: a registry name and the factory's keyword arguments."""
  return config_dict.ConfigDict({"name": name, "kwargs": dict(kwargs)})


def parse_variants(arg: str, allowed, path: str) -> set:
  variants = set(filter(None, (arg or "").split(",")))
  unknown = variants - set(allowed)
  if unknown:
    raise ValueError(
      f"unknown variant(s) {sorted(unknown)} of {path}; use "
      f"{', '.join(sorted(allowed))} (comma-separated)."
    )
  return variants


REAL_METHODS = ["fedavg", "avg-l2clip", "adam-sgd", "diloco", "adam2", "bi2clip"]


def load(spec: str):
  """The config of ``"path/to/config.py[:variant,...]"`` (what ``--config`` takes).

  Raises ``ValueError`` with one line naming the file and the fix: a missing file, a file
  that fails to import or has no ``get_config``, an unknown variant, a ``get_config`` that
  fails (a KeyError, say).
  """
  import importlib.util
  import os

  path, _, variant = spec.partition(":")
  if not os.path.isfile(path):
    raise ValueError(
      f"config file {path!r} does not exist; give a file under configs/, "
      "e.g. --config configs/synthetic.py"
    )
  name = "tailopt_config_" + os.path.splitext(os.path.basename(path))[0]
  mod_spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(mod_spec)
  try:
    mod_spec.loader.exec_module(module)
  except Exception as e:  # noqa: BLE001 - a broken config file is the user's to fix
    first = str(e).splitlines()[0] if str(e) else ""
    raise ValueError(f"config file {path} failed to load: {type(e).__name__}: {first}") from e
  if not hasattr(module, "get_config"):
    raise ValueError(f"config file {path} has no get_config(); see configs/synthetic.py.")
  call = f"get_config({variant!r})" if variant else "get_config()"
  try:
    return module.get_config(variant) if variant else module.get_config()
  except ValueError as e:  # configs raise ValueError for an unknown variant
    raise ValueError(str(e).splitlines()[0]) from None
  except Exception as e:  # noqa: BLE001 - a broken get_config is the user's to fix
    first = str(e).splitlines()[0] if str(e) else ""
    raise ValueError(
      f"config file {path}: {call} failed with {type(e).__name__}: {first}; fix that "
      "function in the file."
    ) from e


def comm_settings(bits, fixed_for: str) -> list:
  """The communication study's settings (``config.sweep.settings``): float32, then each
  width of ``bits`` in scaled ints (error feedback too below 8 bits), then ``fixed_for``'s
  fixed-range grid at the same widths."""
  out = ["f32: compression.bits=32"]
  for kind, only in (("int", ""), ("fixed", f"[{fixed_for}]")):
    for b in bits:
      name = f"{kind}{b}"
      out.append(f"{name}{only}: compression.kind={kind} compression.bits={b}")
      if b < 8:
        out.append(
          f"{name}+ef{only}: compression.kind={kind} compression.bits={b} "
          "compression.error_feedback=True"
        )
  return out

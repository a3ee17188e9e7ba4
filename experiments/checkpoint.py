"""Orbax checkpoints of a run: the round state plus a small JSON record.

The round state (global params, outer state, per-client inner states, per-client noise
PRNG states, the round counter and the sampling key) is saved with
``ocp.args.StandardSave``; typed PRNG keys are stored as their raw ``key_data``. The
JSON record holds the data position (the round: batches are a pure function of seed and
round) and a fingerprint of the config, so a resumed run refuses a checkpoint written
by a different experiment. The state carries its run's tag too (the fingerprint and the
round, in the state folder's own orbax metadata), so a state folder copied in from another
run (another seed, say) or another round is refused rather than resumed from.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp
from etils import epath

from experiments.errors import UserError

# Config fields that do not change the numbers of a run: the horizon (a run may be extended),
# cadences of evaluation/checkpoints/progress and reporting. Everything else is fingerprinted
# (for both engines; the async engine also checks its event schedule's fingerprint).
UNFINGERPRINTED = (
  "rounds",
  "server_steps",
  "time_budget",
  "eval_every",
  "eval_at_start",
  "eval_every_time",
  "checkpoint_every",
  "keep_checkpoints",
  "progress",
  "target",
  "report_metric",
  "report_mode",
  "sweep",
  "stop_on_nan",
)


# The key of a state's custom orbax metadata that ties it to its run.
_TAG = "tailopt_run"


class CheckpointError(UserError, RuntimeError):
  """A checkpoint cannot be used: the message names the folder and the fix."""


def _is_key(x) -> bool:
  return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _unwrap_keys(tree):
  return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _rewrap_keys(template, tree):
  return jax.tree.map(
    lambda t, x: jax.random.wrap_key_data(x, impl=jax.random.key_impl(t)) if _is_key(t) else x,
    template,
    tree,
  )


# Layout fields that leave a run's numbers unchanged at these values (so adding them kept
# the fingerprints of earlier runs); other values are fingerprinted. A tuple lists several
# such values: a device's clients give the same numbers batched or one after another.
NEUTRAL = {
  "mesh": {"model": 1},
  "client_loop": ("vmap", "auto", "sequential"),
  "shard_outer": "auto",
  "optax_rules": {"inner": "", "outer": ""},
  "overlap": {"delay": 0, "alpha": 1.0, "eager": False},
}


# Fields inside a section that were added later, at the values that keep a run's numbers.
NESTED_NEUTRAL = {
  ("compression", "topk"): 0,
  ("compression", "ef_decay"): 1.0,
  ("clock", "replay"): "",
  ("clock", "failure_rate"): 0.0,
  ("clock", "rejoin_rate"): 0.0,
  ("asynchronous", "min_quorum"): 1,
  ("asynchronous", "grace_k"): 3.0,
  ("asynchronous", "grace_window"): 0,
  ("asynchronous", "merge"): "uniform",
  ("asynchronous", "worker_samples"): None,
}


def _clock_neutral(d: dict) -> dict:
  """``d`` without the fields added with the simulated clock and the sparse codes at their
  defaults, so adding them kept the fingerprints of earlier runs: :data:`NESTED_NEUTRAL`,
  ``network`` at its default and (a synchronous run, whose clock only sets ``sim_time``)
  ``clock`` at its default."""
  from configs.common import clock_section, network_section

  d = dict(d)
  for (section, field), value in NESTED_NEUTRAL.items():
    sub = d.get(section)
    if isinstance(sub, dict) and field in sub and sub[field] == value:
      d[section] = {k: v for k, v in sub.items() if k != field}
  if d.get("network") == network_section().to_dict():
    d.pop("network")
  default = {k: v for k, v in clock_section().to_dict().items() if k != "replay"}
  if d.get("mode", "sync") == "sync" and d.get("clock") == default:
    d.pop("clock")
  return d


def _neutral(value, neutral) -> bool:
  return value in neutral if isinstance(neutral, tuple) else value == neutral


def config_fingerprint(config_dict: dict, ignore=UNFINGERPRINTED) -> str:
  """Hash of the config fields that change the numbers of a run (the one fingerprint rule).
  A synchronous run's ``chunk`` (rounds per dispatch) is not among them: a chunk of R rounds
  gives the numbers of R single rounds bit for bit."""
  d = {
    k: v
    for k, v in _clock_neutral(config_dict).items()
    if k not in ignore and not (k in NEUTRAL and _neutral(v, NEUTRAL[k]))
  }
  if d.get("mode", "sync") == "sync":
    d.pop("chunk", None)
  return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Checkpointer:
  """Saves every ``every`` rounds into ``directory``, keeps the ``keep`` newest."""

  def __init__(self, directory: str, every: int, keep: int = 2):
    if keep < 1:
      raise ValueError(f"keep={keep}: at least one checkpoint must be kept.")
    self.directory = os.path.abspath(directory)
    self.every = every
    try:
      self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
          max_to_keep=keep, create=True, enable_async_checkpointing=False
        ),
        item_names=("state", "record"),
      )
    except Exception as e:  # noqa: BLE001 - re-raised as one line naming the folder
      raise CheckpointError(
        f"cannot open checkpoints in {self.directory} ({type(e).__name__}: "
        f"{str(e).splitlines()[0] if str(e) else ''}); use a fresh --workdir."
      ) from e

  def latest_round(self) -> Optional[int]:
    return self.manager.latest_step()

  def save(self, round_index: int, state, record: dict, force: bool = False):
    if not force and (self.every <= 0 or round_index % self.every):
      return False
    if self.manager.latest_step() == round_index:
      return False
    tag = {_TAG: {"fingerprint": record.get("fingerprint"), "round": int(round_index)}}
    self.manager.save(
      round_index,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(_unwrap_keys(state), custom_metadata=tag),
        record=ocp.args.JsonSave(record),
      ),
      force=True,
    )
    self.manager.wait_until_finished()
    return True

  def restore(
    self, template_state, expected_fingerprint: Optional[str] = None
  ) -> tuple[Any, dict] | None:
    """The newest checkpoint as (state, record), or None when there is none.
    ``template_state``: the state's structure, or a function of the record that gives it.

    Raises:
      CheckpointError: a checkpoint exists but cannot be read, or was written by a run
        with a different config.
    """
    step = self.manager.latest_step()
    if step is None:
      return None
    path = os.path.join(self.directory, str(step))

    def fail(e, what):
      first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
      return CheckpointError(
        f"cannot read checkpoint {path} ({what}: {type(e).__name__}: {first}); delete "
        "that folder to fall back to the previous checkpoint, or use a fresh --workdir."
      )

    try:
      record = dict(
        self.manager.restore(step, args=ocp.args.Composite(record=ocp.args.JsonRestore()))["record"]
      )
    except Exception as e:  # noqa: BLE001 - re-raised with the path and the cause
      raise fail(e, "record") from e
    if expected_fingerprint and record.get("fingerprint") != expected_fingerprint:
      raise CheckpointError(
        f"checkpoint {path} was written by a run with a different config (fingerprint "
        f"{record.get('fingerprint')} != {expected_fingerprint}); use a fresh --workdir "
        "or the original config."
      )
    self._check_tag(step, record, fail)
    if callable(template_state):  # the state's shapes depend on the record
      try:
        template_state = template_state(record)
      except KeyError as e:
        raise self.missing_field(step, e) from None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _unwrap_keys(template_state))
    try:
      out = self.manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
      )
    except Exception as e:  # noqa: BLE001
      err = fail(e, "state")
      if "shape" in str(e).lower():  # e.g. a replicated outer state, now split per device
        err = CheckpointError(
          f"{err} If the run was checkpointed before tailopt split the outer state over the "
          "devices, resume it with --config.shard_outer=off."
        )
      raise err from e
    return _rewrap_keys(template_state, out["state"]), record

  def record_path(self, step: int) -> str:
    """The JSON record file of checkpoint ``step``."""
    return os.path.join(self.directory, str(step), "record", "metadata")

  def missing_field(self, step: int, e: KeyError) -> CheckpointError:
    """The one-line error for a record of checkpoint ``step`` that lacks a field."""
    field = e.args[0] if e.args else "?"
    return CheckpointError(
      f"checkpoint record {self.record_path(step)} has no field {field!r} (written by "
      "other code, or edited); delete the folder "
      f"{os.path.join(self.directory, str(step))} to fall back to the previous checkpoint, "
      "or use a fresh --workdir."
    )

  def _check_tag(self, step: int, record: dict, fail) -> None:
    """The state folder of checkpoint ``step`` must be the one its record was written
    with: same run (fingerprint) and round. Checkpoints from before the tag pass."""
    path = os.path.join(self.directory, str(step))
    handler = ocp.StandardCheckpointHandler()
    try:
      meta = handler.metadata(epath.Path(path) / "state")
      tag = (getattr(meta, "custom_metadata", None) or {}).get(_TAG)
    except Exception as e:  # noqa: BLE001 - re-raised with the path and the cause
      raise fail(e, "state") from e
    finally:
      handler.close()
    if tag is None:
      return
    if tag.get("fingerprint") != record.get("fingerprint") or tag.get("round") != step:
      raise CheckpointError(
        f"checkpoint {path}: its state folder belongs to another run (fingerprint "
        f"{tag.get('fingerprint')}, round {tag.get('round')}; the record says "
        f"{record.get('fingerprint')}, round {step}); put back this run's state, delete "
        "that folder to fall back to the previous checkpoint, or use a fresh --workdir."
      )

  def close(self):
    self.manager.close()

"""The interface between the loop (``experiments.engines.loop``) and an engine.

An engine knows how to start a run, run a chunk of steps and say what to save; the loop owns
everything else (the workdir lock, resume, the metric writer, checkpoints, evaluation,
best/target tracking, divergence, signals, the progress bar and the summary). Two engines
implement it: :class:`experiments.engines.sync.SyncEngine` (synchronous rounds) and
:class:`experiments.engines.asynchronous.AsyncEngine` (the asynchronous simulator). A third
engine is a class with these members; ``loop.make_engine`` picks it from the config.

Positions ``t`` count steps done (rounds, or server steps), from 0 to :attr:`total`.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Union, runtime_checkable

# The state an engine's chunks thread through (a pytree: a tailopt.RoundState, a Simulator's
# state, ...). The loop never looks inside it; it asks the engine for the params.
State = Any
# A metric row: {"round": t, "sim_time": simulated seconds (tailopt.timing), "train/<name>":
# float, ...}; an async row also has "time" (= sim_time); "hist/<tag>" entries (arrays) are
# TensorBoard histograms.
Row = dict


@runtime_checkable
class Engine(Protocol):
  """What the loop needs from an engine (4 attributes, 12 methods)."""

  unit: str
  """The name of one step, for logs and the summary: ``"round"`` or ``"step"``."""

  total: int
  """Steps in the whole run (the horizon); the loop stops at ``t == total``."""

  label: str
  """A short name of the run (the method, or the async preset), for the progress bar."""

  title: str
  """The summary's title line, e.g. ``"tailopt run: bi2clip on synthetic"``."""

  def init(self, params) -> State:
    """The state of a fresh run at ``t = 0`` from the model's initial ``params``."""
    ...

  def restore_template(self, params) -> Union[State, Callable[[dict], State]]:
    """The structure of a saved state, to restore a checkpoint into: a state like the one
    :meth:`save` gives, or a function of the checkpoint's record that returns one (when
    the shapes depend on the record, e.g. how many clients a store holds)."""
    ...

  def save(self, state: State, t: int) -> tuple[Any, dict]:
    """``(tree, extra)``: the pytree to checkpoint at ``t`` and the JSON-able fields the
    loop adds to the checkpoint's record (which :meth:`load` gets back)."""
    ...

  def load(self, tree, record: dict, params) -> State:
    """The state from a restored ``tree`` and its ``record``; raises
    :class:`experiments.checkpoint.CheckpointError` for a checkpoint it cannot use."""
    ...

  def params(self, state: State):
    """The global model parameters in ``state`` (evaluated and checked by the loop)."""
    ...

  def chunk_len(self, t: int) -> int:
    """Steps in the chunk that starts at ``t`` (at least 1, at most ``total - t``); a
    pure function of ``t`` and the config, so a resumed run runs the same chunks."""
    ...

  def eval_at(self, t: int) -> bool:
    """Whether the loop evaluates at the chunk end ``t``."""
    ...

  def run(self, state: State, t: int, n: int) -> tuple[State, list[Row]]:
    """Runs steps ``t .. t + n - 1``; returns the new state and one metric row per step
    (``row["round"]`` = the step's position after it, ``t + 1 .. t + n``)."""
    ...

  def start(self, workdir: str, state: State) -> None:
    """Called once per process start, before the first chunk (and after a resume): writes
    the engine's own outputs (e.g. the async staleness report)."""
    ...

  def postfix(self, row: Row) -> dict:
    """Extra fields for the progress bar from the chunk's last row."""
    ...

  def summary(self, state: State, t: int, out: dict) -> dict:
    """The engine's fields of the summary dict (``summary.json``); ``out`` holds the loop's
    own fields (``best_at``, ``per_s``, ...)."""
    ...

  def summary_rows(self, s: dict) -> list[tuple[str, str]]:
    """``(label, value)`` lines of the one-screen summary from the summary dict ``s``."""
    ...


MEMBERS = (
  "unit",
  "total",
  "label",
  "title",
  "init",
  "restore_template",
  "save",
  "load",
  "params",
  "chunk_len",
  "eval_at",
  "run",
  "start",
  "postfix",
  "summary",
  "summary_rows",
)

r"""Overlapped streaming: a fragment's synchronization runs while the clients keep training.

Streaming synchronization (``build_round(..., fragments=F)``) syncs fragment
:math:`f = t \bmod F` at the end of round :math:`t` and restarts the clients' copy of it from
the new global :math:`x_{t+1}^{(f)}` before round :math:`t+1`: the clients wait for it. With
an :class:`Overlap` they do not:

* **delay** :math:`\tau` (inner steps, ``0 <= tau <= z``): the clients start round
  :math:`t+1` from their own models and run :math:`\tau` steps; then the averaged fragment
  arrives and is merged in, and they run the remaining :math:`z - \tau` steps;
* **blend** :math:`\alpha` (``alpha``): the merge is
  :math:`x_i^{(f)} \leftarrow \alpha\, x_{t+1}^{(f)} + (1 - \alpha)\, x_i^{(f)}` (the weight of
  the global fragment; torchft's ``fragment_update_alpha`` is :math:`1 - \alpha`);
* **eager** (``eager=True``): until the average arrives, each client's own
  :math:`\Delta_i^{(f)}` stands in for it: at the sync it sets
  :math:`x_i^{(f)} \leftarrow x_t^{(f)} + u_i` with :math:`u_i` the outer rule's step on
  :math:`\Delta_i^{(f)}` alone (from the outer state the server steps from, which it does not
  change); without it the clients keep training their own fragment.

:math:`\tau = 0, \alpha = 1` (not eager) is the plain streaming round, bit for bit. Round 0
has nothing in flight. The time model credits the overlap
(:class:`tailopt.timing.SyncClock` with ``delay``): a client waits for the broadcast only
if it has not arrived by its :math:`\tau`-th step.

    rnd = tailopt.overlap.build_round(loss_fn, method, local_steps=8, num_clients=8,
                                      fragments=4, overlap=Overlap(delay=2, alpha=0.5))

References:
  Douillard et al., "Streaming DiLoCo with overlapping communication", arXiv 2501.18512,
  2025 (delay and blend). Kale et al., "Eager Updates For Overlapped Communication and
  Computation in DiLoCo", arXiv 2502.12996, 2025 (the local stand-in).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from tailopt import rounds
from tailopt.local import LocalResult


@dataclasses.dataclass(frozen=True)
class Overlap:
  """``delay`` tau (inner steps before the averaged fragment is merged), ``alpha`` (its
  weight in the merge) and ``eager`` (the client's own Delta stands in until then)."""

  delay: int = 0
  alpha: float = 1.0
  eager: bool = False

  def check(self, local_steps: int) -> None:
    if not isinstance(self.delay, int) or not 0 <= self.delay <= local_steps:
      raise ValueError(
        f"Overlap.delay={self.delay!r} must be an integer in [0, local_steps={local_steps}]."
      )
    if not 0.0 <= float(self.alpha) <= 1.0:
      raise ValueError(f"Overlap.alpha={self.alpha!r} must be in [0, 1] (1 = the global).")


def _merge(params, x, ids, fragments: int, round_idx, alpha: float):
  """The clients' models ``x`` (leading axis k) with the fragment synced last round
  (``(round_idx - 1) mod F``; none in round 0) merged: ``alpha * global + (1 - alpha) * x``."""
  f_prev = (round_idx - 1) % fragments
  pending = round_idx > 0
  leaves, treedef = jax.tree.flatten(x)
  out = []
  for xl, g, i in zip(leaves, jax.tree.leaves(params), ids):
    g = jnp.broadcast_to(g, xl.shape).astype(xl.dtype)
    blended = g if alpha == 1.0 else (alpha * g + (1.0 - alpha) * xl).astype(xl.dtype)
    out.append(jnp.where(pending & (f_prev == i), blended, xl))
  return jax.tree.unflatten(treedef, out)


@dataclasses.dataclass(frozen=True)
class OverlapClientPhase(rounds.ClientPhase):
  """The streaming client phase with the merge of the fragment in flight after ``delay``
  steps (:func:`_merge`); the local steps run in two scans around it."""

  fragments: int = 1
  overlap: Overlap = Overlap()

  def __call__(self, params, local_params, inner_state, noise_state, batch, active, round_idx):
    ax, tau, z = self.axis_name, self.overlap.delay, self.local_steps
    step0 = round_idx * z
    k = jax.tree.leaves(batch)[0].shape[0]
    if self.reset_inner_state:
      fresh = self.inner.init(params)
      fresh = jax.tree.map(lambda a: jax.lax.pcast(a, ax, to="varying"), fresh)
      start_state = rounds._stack(fresh, k)
    else:
      start_state = inner_state
    ids = rounds.fragment_ids(params, self.fragments)

    def merge(x):
      return _merge(params, x, ids, self.fragments, round_idx, float(self.overlap.alpha))

    if tau == 0:  # merged before the first step: the plain streaming round's start
      x0 = merge(local_params)
      res = self.run_clients(x0, 0, start_state, noise_state, batch, round_idx, step0)
    else:
      x0 = local_params
      res = self._split_run(x0, start_state, noise_state, batch, round_idx, step0, merge)
    return rounds.ClientOutput(
      start=x0,
      delta=res.delta,
      inner_state=rounds._keep_active(active, res.inner_state, inner_state),
      noise_state=rounds._keep_active(active, res.noise_state, noise_state),
      metrics=res.metrics,
    )

  def _split_run(self, x0, state, noise_state, batch, round_idx, step0, merge) -> LocalResult:
    """``tau`` steps, the merge, then the other ``z - tau``; Delta = x0 - x_end and the
    metrics' means over all z steps."""
    tau, z = self.overlap.delay, self.local_steps
    first = jax.tree.map(lambda a: a[:, :tau], batch)
    r1 = self.run_clients(x0, 0, state, noise_state, first, round_idx, step0)
    x_mid = merge(jax.tree.map(lambda a, d: a - d, x0, r1.delta))
    if tau == z:
      x_end, r = x_mid, r1
      metrics = r1.metrics
    else:
      rest = jax.tree.map(lambda a: a[:, tau:], batch)
      r = self.run_clients(x_mid, 0, r1.inner_state, r1.noise_state, rest, round_idx, step0 + tau)
      x_end = jax.tree.map(lambda a, d: a - d, x_mid, r.delta)
      metrics = {key: (tau * r1.metrics[key] + (z - tau) * r.metrics[key]) / z for key in r.metrics}
    delta = jax.tree.map(lambda a, b: a - b, x0, x_end)
    return LocalResult(delta, r.inner_state, r.noise_state, metrics)


@dataclasses.dataclass(frozen=True)
class OverlapFragmentSchedule(rounds.FragmentSchedule):
  """Streaming synchronization whose clients do not restart the synced fragment at the end
  of the round (the next round's client phase merges it after ``delay`` steps); with
  ``eager`` they set it to the global plus the outer step on their own Delta."""

  overlap: Overlap = Overlap()
  server: rounds.ServerPhase = None  # the outer rule, for the eager stand-in

  def __call__(
    self, parts, clients, params, outer_state, comm_state, local_params, weights, round_idx, keys
  ):
    out = super().__call__(
      parts, clients, params, outer_state, comm_state, local_params, weights, round_idx, keys
    )
    if not self.overlap.eager:
      return out
    ids = rounds.fragment_ids(params, self.fragments)
    eager = self._eager(params, outer_state, out.local_params, ids, round_idx)
    return out._replace(local_params=eager)

  def restart(self, clients, local_params, new_params, ids, active, round_idx):
    """Every client continues from its own model, the synced fragment included."""
    x_end = jax.tree.map(lambda a, d: a - d, clients.start, clients.delta)
    return rounds._keep_active(active, x_end, local_params)

  def _eager(self, params, outer_state, local, ids, round_idx):
    """Fragment ``round mod F`` of each client: ``x_t + u(Delta_i)``, the outer step on
    its own Delta from the pre-sync outer state."""

    def branch(f):
      def run(local):
        like = rounds._select(params, ids, f)
        own = jax.tree.map(lambda g, x: g[None] - x, like, rounds._select(local, ids, f))

        def step(d):
          u, _ = self.server(d, outer_state[f], like, round_idx)
          return jax.tree.map(lambda p, v: p + v, like, u)

        eager = jax.vmap(step)(own)
        leaves = jax.tree.leaves(local)
        e_leaves = iter(jax.tree.leaves(eager))
        new = [next(e_leaves).astype(x.dtype) if i == f else x for x, i in zip(leaves, ids)]
        return jax.tree.unflatten(jax.tree.structure(local), new)

      return run

    return jax.lax.switch(
      round_idx % self.fragments, [branch(f) for f in range(self.fragments)], local
    )


def build_round(loss_fn, method=None, *, fragments: int, overlap: Overlap, **kwargs):
  """:func:`tailopt.build_round` with ``fragments`` (streaming) and the :class:`Overlap`
  of its synchronization. Full participation only (a client left out of a round would miss
  the merge)."""
  if not isinstance(overlap, Overlap):
    raise TypeError(f"overlap must be a tailopt.overlap.Overlap, got {type(overlap).__name__}.")
  if kwargs.get("participation") is not None:
    raise ValueError(
      "overlapped streaming needs every client in every round (participation=None): a "
      "client left out would miss the merge of the fragment in flight."
    )
  rnd = rounds.build_round(loss_fn, method, fragments=fragments, **kwargs)
  overlap.check(rnd.local_steps)
  parts = rnd.parts
  fields = {f.name: getattr(parts.client, f.name) for f in dataclasses.fields(parts.client)}
  parts = dataclasses.replace(
    parts,
    client=OverlapClientPhase(**fields, fragments=int(fragments), overlap=overlap),
    schedule=OverlapFragmentSchedule(int(fragments), overlap=overlap, server=parts.server),
  )
  step, steps = rounds._compile_round(parts, rnd.donate)
  return dataclasses.replace(rnd, parts=parts, compiled_step=step, compiled_steps=steps)

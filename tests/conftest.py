"""Test configuration: give JAX 8 CPU devices before any JAX op runs, and run the heaviest
test files first."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

# Measured seconds of the default suite's heaviest files (one worker, the test time summed
# over the file's tests; re-measure when a file's cost changes much). Files not listed run
# after these, in the order pytest collected them.
FILE_SECONDS = {
  "test_contract.py": 153,
  "test_smoke.py": 68,
  "test_compression.py": 56,
  "test_shard_outer.py": 46,
  "test_mesh.py": 46,
  "test_async_rules.py": 35,
  "test_noise.py": 33,
  "test_rounds.py": 32,
  "test_sparse_codes.py": 21,
  "test_async_sim.py": 20,
  "test_findings.py": 17,
  "test_clipping.py": 16,
  "test_async_waves.py": 12,
  "test_overlap.py": 12,
  "test_wallclock.py": 10,
  "test_boundary.py": 7,
}


def pytest_collection_modifyitems(config, items):
  """Orders the test files longest first (within a file the order is unchanged).

  pytest-xdist's ``--dist loadfile`` hands each worker the next whole file when it runs
  low, in collection order (``--no-loadscope-reorder`` in pyproject's addopts keeps it from
  re-sorting the files by their number of tests): longest-processing-time-first
  scheduling, which keeps the two workers' shares close. The order depends only on the
  collected names, so every worker collects the same list (xdist requires it)."""
  first_index = {}
  for i, item in enumerate(items):
    first_index.setdefault(item.path, i)
  items.sort(key=lambda item: (-FILE_SECONDS.get(item.path.name, 0), first_index[item.path]))

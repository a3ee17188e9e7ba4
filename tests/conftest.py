"""Test configuration: give JAX 8 CPU devices before any JAX op runs, and run the heaviest
test files first."""

import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

# One XLA compilation per distinct program in each worker: many tests compile the same small
# programs (a transform's init and update under the contract's variants, the same round at
# the same shapes), so each pytest process keeps a persistent compilation cache of its own,
# new for every run and removed at its end (a cache shared by the two workers needs JAX's
# file lock and measured slower than none: 345 s vs 285 s; one per worker 264 s).
_XLA_CACHE = tempfile.mkdtemp(prefix="tailopt-tests-xla-")
jax.config.update("jax_compilation_cache_dir", _XLA_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)

# Seconds of the default suite's heaviest files (each file's tests summed; measured with
# -n 2 on a 2-core machine busy with other jobs, a 12-minute run of the suite: only the
# order matters). Re-measure when a file's cost changes much. Files not listed run after
# these, in the order pytest collected them.
FILE_SECONDS = {
  "test_contract.py": 367,
  "test_smoke.py": 244,
  "test_mesh.py": 117,
  "test_compression.py": 110,
  "test_shard_outer.py": 74,
  "test_noise.py": 64,
  "test_async_rules.py": 60,
  "test_rounds.py": 59,
  "test_async_sim.py": 50,
  "test_findings.py": 38,
  "test_async_waves.py": 31,
  "test_wallclock.py": 29,
  "test_overlap.py": 23,
  "test_clipping.py": 22,
  "test_async_membership.py": 17,
  "test_sparse_codes.py": 17,
  "test_boundary.py": 16,
  "test_async_failures_study.py": 13,
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


def pytest_configure(config):
  """The default suite (``-m 'not slow'``, pyproject's addopts) compiles with most of XLA's
  optimizations off (``jax_disable_most_optimizations``): its programs are small and run
  for milliseconds, so compilation is most of its time, and this cuts the suite by about a
  quarter (504 tests: 91 s against 120-136 s on an idle 2-core machine). Every other
  selection, ``-m slow`` (which CI also runs) among them, compiles as users' runs do, so
  the optimized programs keep their own equivalence and bit-for-bit tests.
  ``TAILOPT_TEST_OPTIMIZE=1`` keeps the optimizations in the default suite too."""
  default = (config.option.markexpr or "").strip() == "not slow"
  if default and os.environ.get("TAILOPT_TEST_OPTIMIZE", "0") != "1":
    jax.config.update("jax_disable_most_optimizations", True)


def pytest_unconfigure(config):
  """Each process (controller and workers) removes its compilation cache."""
  shutil.rmtree(_XLA_CACHE, ignore_errors=True)

"""The library boundary: ``tailopt`` needs only jax, optax and numpy.

``tailopt/`` imports only the standard library, jax, optax, numpy and itself; with the
experiments' dependencies made unimportable it still builds a method and runs a round; and
(slow) a fresh virtual environment with only the core requirements installed does the same.
"""

import ast
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORE = {"jax", "jaxlib", "optax", "numpy", "tailopt"}
# What the experiments extra brings. absl is not here: optax itself imports absl.logging
# (absl-py is one of optax's own requirements).
NOT_CORE = [
  "flax",
  "tensorflow_datasets",
  "tensorflow",
  "orbax",
  "ml_collections",
  "matplotlib",
  "tqdm",
  "gguf",
  "tokenizers",
  "safetensors",
  "sacrebleu",
  "jinja2",
  "tensorboardX",
  "tensorboard",
  "experiments",
  "configs",
]

# Runs in a subprocess: with BLOCK set, importing any NOT_CORE module fails, and so does any
# import made by a tailopt module outside the core requirements.
SCRIPT = r"""
import os, sys
BLOCKED = set(os.environ["BLOCK"].split(",")) if os.environ.get("BLOCK") else set()
ALLOWED = set(os.environ["CORE"].split(",")) | set(sys.stdlib_module_names)


class Guard:
  def find_spec(self, name, path=None, target=None):
    top = name.split(".")[0]
    if top in BLOCKED:
      raise ImportError(f"{name} is not a core requirement of tailopt")
    if top not in ALLOWED:
      f = sys._getframe(1)
      while f is not None and f.f_code.co_filename.startswith("<frozen"):
        f = f.f_back
      if f is not None and os.sep + "tailopt" + os.sep in f.f_code.co_filename:
        raise ImportError(f"{f.f_code.co_filename} imports {name}, not a core requirement")
    return None


if BLOCKED:
  sys.meta_path.insert(0, Guard())

import jax
import jax.numpy as jnp
import numpy as np

import tailopt
from tailopt import asynchronous  # noqa: F401
from tailopt.data import batching, partition, synthetic, types  # noqa: F401

method = tailopt.get_method("bi2clip")


def loss(p, b):
  return jnp.mean((b["x"] @ p["w"] + p["c"] - b["y"]) ** 2)


C, Z, B, D = 4, 2, 8, 3
rnd = tailopt.build_round(loss, method, local_steps=Z, num_clients=C)
state = rnd.init({"w": jnp.zeros(D), "c": jnp.zeros(())})
r = np.random.default_rng(0)
batch = {"x": r.normal(size=(C, Z, B, D)).astype(np.float32),
         "y": r.standard_cauchy(size=(C, Z, B)).astype(np.float32)}
for _ in range(2):
  state, metrics = rnd(state, batch)
assert int(state.round) == 2
assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state.params))
loaded = sorted({m.split(".")[0] for m in sys.modules} & BLOCKED)
assert not loaded, loaded
print("ROUND_OK", len(jax.devices()), tailopt.__file__)
"""


def _env(**extra):
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XLA_FLAGS")}
  env.update(
    JAX_PLATFORMS="cpu",
    XLA_FLAGS="--xla_force_host_platform_device_count=2",
    CORE=",".join(sorted(CORE)),
    **extra,
  )
  return env


def test_core_modules_import_only_the_core_requirements():
  bad = []
  for path in sorted((ROOT / "tailopt").rglob("*.py")):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and node.level == 0:
        names = [node.module]
      else:
        continue
      for name in names:
        top = name.split(".")[0]
        if top not in CORE and top not in sys.stdlib_module_names and top != "__future__":
          bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
  assert not bad, "tailopt/ must import only jax, optax, numpy:\n" + "\n".join(bad)


def test_round_runs_without_the_experiments_dependencies(tmp_path):
  r = subprocess.run(
    [sys.executable, "-c", SCRIPT],
    cwd=tmp_path,
    capture_output=True,
    text=True,
    timeout=300,
    env=_env(PYTHONPATH=str(ROOT), BLOCK=",".join(NOT_CORE)),
  )
  assert r.returncode == 0, r.stdout + r.stderr[-4000:]
  assert f"ROUND_OK 2 {ROOT / 'tailopt'}" in r.stdout


@pytest.mark.slow
def test_fresh_venv_with_only_the_core_requirements(tmp_path):
  """``pip install <repo>`` (no extras) in a new virtual environment, then a round."""
  t0 = time.perf_counter()
  src = tmp_path / "src"  # a clean copy: no build/ left over in the checkout
  shutil.copytree(ROOT / "tailopt", src / "tailopt", ignore=shutil.ignore_patterns("__pycache__"))
  for f in ("pyproject.toml", "README.md"):
    shutil.copy(ROOT / f, src / f)
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
  py = str(venv / "bin" / "python")
  pip = subprocess.run(
    [py, "-m", "pip", "install", "-q", str(src)],
    capture_output=True,
    text=True,
    timeout=1800,
    env=_env(PIP_DISABLE_PIP_VERSION_CHECK="1"),
  )
  assert pip.returncode == 0, pip.stdout + pip.stderr[-4000:]
  missing = subprocess.run(
    [
      py,
      "-c",
      "import importlib.util as u, sys; "
      "print(','.join(m for m in sys.argv[1:] if u.find_spec(m) is not None))",
      *NOT_CORE,
    ],
    cwd=tmp_path,
    capture_output=True,
    text=True,
    env=_env(),
    timeout=120,
  )
  assert missing.stdout.strip() == "", f"installed without being asked: {missing.stdout}"
  r = subprocess.run(
    [py, "-c", SCRIPT],
    cwd=tmp_path,
    capture_output=True,
    text=True,
    timeout=600,
    env=_env(BLOCK=",".join(NOT_CORE)),
  )
  assert r.returncode == 0, r.stdout + r.stderr[-4000:]
  assert "ROUND_OK 2 " + str(venv) in r.stdout
  print(f"fresh venv: install + round in {time.perf_counter() - t0:.0f} s")

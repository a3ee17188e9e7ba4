"""Configs: the hyperparameter section, per-method tuned points and schedules from configs."""

import glob
import importlib
import os
import subprocess
import sys

import pytest

import tailopt
from experiments import validate
from experiments.engines import build

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(
  os.path.basename(p)[:-3]
  for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
  if not p.endswith(("__init__.py", "common.py"))
)


def _config(name, arg=""):
  return importlib.import_module(f"configs.{name}").get_config(arg)


@pytest.mark.parametrize("name", CONFIGS)
def test_hparams_section_is_the_library_registry(name):
  c = _config(name)
  assert set(c.hparams.keys()) == set(tailopt.default_hyperparameters())


@pytest.mark.parametrize("name", CONFIGS)
def test_every_tuned_point_builds_its_method(name):
  c = _config(name)
  for method, point in (c.get("tuned") or {}).items():
    tailopt.get_method(method, **dict(point))


def test_method_override_uses_that_methods_own_tuned_point():
  c = _config("synthetic")
  assert build.method_hparams(c)["inner_lr"] == 0.003  # bi2clip's
  c.method = "fedavg"
  assert build.method_hparams(c) == {"inner_lr": 0.001, "outer_lr": 1.0}
  c.method = "avg-adam"  # not tuned: its defaults
  assert build.method_hparams(c) == {}
  validate.validate(c)


def test_an_override_the_method_ignores_is_an_error():
  c = _config("synthetic")
  c.method = "fedavg"
  c.hparams.outer_upper = 0.1
  with pytest.raises(
    validate.ConfigError,
    match=r"config.hparams.outer_upper is set but config.method='fedavg' "
    r"does not use it.*fedavg uses: inner_lr",
  ):
    validate.validate(c)


@pytest.mark.parametrize(
  "field,value", [("inner_lr", float("nan")), ("outer_lr", float("inf")), ("momentum", 1.5)]
)
def test_bad_values_are_config_errors(field, value):
  c = _config("synthetic")
  c.method = "diloco"
  setattr(c.hparams, field, value)
  with pytest.raises(validate.ConfigError, match=f"config.hparams.{field}"):
    validate.validate(c)


def test_every_schedule_of_the_spec_is_reachable_from_a_config():
  c = _config("synthetic")
  for level in ("inner", "outer"):
    for q in ("lr", "upper", "lower"):
      setattr(c.hparams, f"{level}_{q}_exponent", -0.5)
  validate.validate(c)
  m = tailopt.get_method(c.method, **build.method_hparams(c))
  assert m.hparams["inner_lr_exponent"] == -0.5 and m.hparams["outer_lower_exponent"] == -0.5


def test_cli_method_override_runs_with_that_methods_defaults(tmp_path):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  out = subprocess.run(
    [
      sys.executable,
      "-m",
      "experiments.main",
      "--config",
      "configs/synthetic.py:runlocal",
      "--workdir",
      str(tmp_path / "run"),
      "--config.method=fedavg",
      "--config.rounds=4",
      "--config.progress=False",
    ],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert out.returncode == 0, out.stderr[-2000:]
  assert "inner_lr=0.001, outer_lr=1.0" in out.stdout + out.stderr

"""Entry point: a config in, a run out.

    python -m experiments.main --config configs/synthetic.py --workdir /tmp/synth
    python -m experiments.main --config configs/synthetic.py:runlocal --workdir /tmp/s \\
        --config.method=fedavg

Rerunning the same command resumes from the newest checkpoint in --workdir. Configs with
``mode='async'`` (configs/async_*.py) run the asynchronous simulator (experiments.async_train).
Multi-host: call with --multihost on every host (jax.distributed.initialize()).
"""

import os

if "JAX_NUM_CPU_DEVICES" not in os.environ and "xla_force_host_platform_device_count" not in \
    os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + " --xla_force_host_platform_device_count=8")

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for metrics and checkpoints.")
_MULTIHOST = flags.DEFINE_bool("multihost", False, "Call jax.distributed.initialize().")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  from absl import logging
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  import jax
  if _MULTIHOST.value:
    jax.distributed.initialize()
  from experiments.validate import ConfigError
  if _CONFIG.value.get("mode") == "async":
    from experiments import async_train as train
  else:
    from experiments import train
  try:
    train.train(_CONFIG.value, _WORKDIR.value)
  except ConfigError as e:
    raise app.UsageError(str(e)) from None


if __name__ == "__main__":
  app.run(main)

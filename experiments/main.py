"""Entry point: a config in, a run out.

    python -m experiments.main --config configs/synthetic.py --workdir /tmp/synth
    python -m experiments.main --config configs/synthetic.py:runlocal --workdir /tmp/s \\
        --config.method=fedavg

Rerunning the same command resumes from the newest checkpoint in --workdir (a finished run
prints its stored summary). Configs with ``mode='async'`` (configs/async_*.py) run the
asynchronous simulator through the same loop. Ctrl-C or SIGTERM stops at the end of the
current chunk with a checkpoint (exit 0). Every user error is one line on stderr with exit
status 2 (``--debug`` adds the traceback). Multi-host: ``--multihost`` on every host.
"""

import os
import sys

if "JAX_NUM_CPU_DEVICES" not in os.environ and "xla_force_host_platform_device_count" not in \
    os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + " --xla_force_host_platform_device_count=8")


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  from experiments import cli
  rest, overrides = cli.split_config_overrides(argv)
  p = cli.ArgumentParser(prog="python -m experiments.main",
                              description=__doc__.splitlines()[0])
  p.add_argument("--config", required=True, help="configs/<x>.py[:variant,...]")
  p.add_argument("--workdir", required=True, help="directory for metrics and checkpoints")
  p.add_argument("--multihost", action="store_true", help="call jax.distributed.initialize()")
  p.add_argument("--debug", action="store_true", help="print tracebacks of user errors")
  args = p.parse_args(rest)

  def run():
    from absl import logging
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    config = cli.load_config(args.config, overrides)
    import jax
    if args.multihost:
      jax.distributed.initialize()
    from experiments import train
    train.train(config, args.workdir)

  return cli.run_cli(run, args.debug)


if __name__ == "__main__":
  sys.exit(main())

"""Entry point: a config in, a run out.

    python -m experiments.main --config configs/synthetic.py --workdir /tmp/synth
    python -m experiments.main --config configs/synthetic.py:runlocal --workdir /tmp/s \\
        --config.method=fedavg

Rerunning the same command resumes from the newest checkpoint in --workdir (a finished run
prints its stored summary). Configs with ``mode='async'`` (configs/async_*.py) run the
asynchronous simulator through the same loop. Ctrl-C or SIGTERM stops at the end of the
current chunk with a checkpoint (exit 0); during start-up (imports, config, before the run
takes the workdir's lock and its own handlers) it ends the process at once with one
``error:`` line and exit status 128 + the signal's number (130, 143). Every user error is one
line on stderr with exit status 2 (``--debug`` adds the traceback). Multi-host: the same
command on every host with ``--multihost`` (cluster detected by JAX) or ``--coordinator
host0:port --num_processes N --process_id i``.
"""

import os
import signal
import sys


def _stop_during_start_up(signum, frame):
  """SIGINT/SIGTERM before the loop's own handlers (``rundir.StopRequest``) take over: one
  line and an exit at once. Raising KeyboardInterrupt here is not enough (it can land in a
  callback that swallows it, e.g. JAX's gc callback), and SIGTERM's default is a silent
  kill."""
  del frame
  name = signal.Signals(signum).name
  os.write(
    2,
    f"error: {name} during start-up, before training began; nothing was trained or "
    "checkpointed: rerun the same command to start.\n".encode(),
  )
  os._exit(128 + signum)


def _default_signal_handlers() -> None:
  signal.signal(signal.SIGINT, signal.default_int_handler)
  signal.signal(signal.SIGTERM, signal.SIG_DFL)


if __name__ == "__main__":  # first thing, before jax is imported (not when imported)
  for _signal in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_signal, _stop_during_start_up)

if (
  "JAX_NUM_CPU_DEVICES" not in os.environ
  and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", "")
):
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
  )


def init_distributed(
  coordinator=None, num_processes=None, process_id=None, heartbeat_timeout: int = 100
) -> None:
  """``jax.distributed.initialize`` for a multi-process run; CPU processes exchange
  collectives through gloo. Without ``coordinator`` JAX detects the cluster itself."""
  import jax
  from experiments.errors import UserError

  if coordinator and (num_processes is None or process_id is None):
    raise UserError(
      "--coordinator needs --num_processes and --process_id (e.g. "
      "--coordinator=host0:1234 --num_processes=2 --process_id=0)."
    )
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  kw = dict(heartbeat_timeout_seconds=int(heartbeat_timeout))
  if coordinator:
    kw.update(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
  try:
    jax.distributed.initialize(**kw)
  except (ValueError, RuntimeError) as e:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise UserError(
      f"jax.distributed.initialize failed ({first}); pass --coordinator, "
      "--num_processes and --process_id, or run where JAX detects the "
      "cluster (TPU pod, SLURM, Open MPI)."
    ) from None


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  from experiments import cli, supervise

  rest, overrides = cli.split_config_overrides(argv)
  p = cli.ArgumentParser(
    prog="python -m experiments.main",
    description=__doc__.splitlines()[0],
    epilog=cli.OVERRIDE_HELP.format(prog="python -m experiments.main"),
    formatter_class=cli.argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument("--config", required=True, help="configs/<x>.py[:variant,...]")
  p.add_argument("--workdir", required=True, help="directory for metrics and checkpoints")
  p.add_argument(
    "--multihost",
    action="store_true",
    help="several processes (hosts): call jax.distributed.initialize(), which "
    "finds the coordinator itself on TPU pods, SLURM, Open MPI and k8s",
  )
  p.add_argument("--coordinator", help="HOST:PORT of process 0 (implies --multihost)")
  p.add_argument("--num_processes", type=int, help="processes in the job (with --coordinator)")
  p.add_argument("--process_id", type=int, help="this process's index (with --coordinator)")
  p.add_argument(
    "--heartbeat_timeout",
    type=int,
    default=100,
    help="seconds without a peer's heartbeat before a multi-process run ends with one "
    "error line (default 100)",
  )
  p.add_argument("--debug", action="store_true", help="print tracebacks of user errors")
  args = p.parse_args(rest)
  if (args.multihost or args.coordinator) and not supervise.is_worker():
    # The work runs in a child, so a lost peer (an abort inside JAX) is one error line.
    return supervise.run_worker(argv, args.heartbeat_timeout)

  def run():
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    config = cli.load_config(args.config, overrides)

    if args.multihost or args.coordinator:
      init_distributed(
        args.coordinator, args.num_processes, args.process_id, args.heartbeat_timeout
      )
    from experiments.engines.loop import train

    try:
      train(config, args.workdir)
    except Exception as e:  # noqa: BLE001 -- only a lost peer's collective error is turned
      line = supervise.collective_lost_line(e) if args.multihost or args.coordinator else ""
      if not line:
        raise
      from experiments.errors import UserError

      raise UserError(line) from None
    if __name__ == "__main__":
      _default_signal_handlers()  # the run is over: no longer "during start-up"

  return cli.run_cli(run, args.debug)


if __name__ == "__main__":
  sys.exit(main())

import sys

from experiments.tailbench.cli import main

if __name__ == "__main__":  # (not in a spawned worker, which imports this as __mp_main__)
  sys.exit(main())

import sys

from experiments.tailbench.cli import main

sys.exit(main())

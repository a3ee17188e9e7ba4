"""The wall-clock study (``experiments/results/wallclock/``): which way to train reaches a
target quality first at 0.1, 1, 10 and 100 Gb/s.

* :mod:`experiments.wallclock.study`: the tasks, arms, bandwidths, targets, seeds and lengths
  (pure data);
* :mod:`experiments.wallclock.jobs`: every run's config and folder, tuning, report runs,
  retiming (:mod:`experiments.retime`) and ``sweep.json``;
* :mod:`experiments.wallclock.report`: time to target, winners and the plot (the report
  module ``sweep.json`` names);
* ``python -m experiments.wallclock``: the CLI.
"""

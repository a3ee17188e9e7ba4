"""tailbench: how does an optimizer hold up when the gradient noise is heavy-tailed?

    python -m experiments.tailbench --suite small --workdir runs/tailbench/small
    python -m experiments.tailbench --suite smoke --optimizer my_opt.py:make --name mine

Modules: :mod:`~experiments.tailbench.suites` (tasks, noise laws, grids, the standard set),
:mod:`~experiments.tailbench.bench` (the runs, under :mod:`experiments.sweep`'s rules),
:mod:`~experiments.tailbench.scores` (AUC, divergence, normalised quality, robustness),
:mod:`~experiments.tailbench.leaderboard` (tables and JSON), :mod:`~experiments.tailbench.plots`,
:mod:`~experiments.tailbench.cli` (the command).
"""

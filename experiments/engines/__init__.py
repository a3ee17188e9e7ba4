"""The experiment loop and the two engines behind it.

    from experiments.engines.loop import train
    summary = train(config, workdir)

* ``protocol.py``: :class:`Engine`, the interface the loop drives (written down, checked by
  the tests for both engines).
* ``sync.py``: :class:`SyncEngine`, synchronous TailOPT rounds (:func:`tailopt.build_round`).
* ``asynchronous.py``: :class:`AsyncEngine`, the asynchronous simulator (``mode='async'``).
* ``loop.py``: :func:`train`, the one loop (lock, resume, chunks, evaluation, checkpoints,
  signals); it picks the engine (:func:`make_engine`) and takes a :class:`Run` (the parts of
  one run, a frozen dataclass).
* ``tracker.py`` (best value, target, divergence), ``evaluation.py`` (held-out metrics),
  ``summary.py`` (the summary dict and its one-screen box), ``outputs.py`` (which process
  writes, ``code.json``).
* ``build.py``: what a config resolves to for both engines (the method's hyperparameters,
  compressors, noise, devices, steps per dispatch, the simulated clock and network, the
  streaming overlap).

This file imports nothing, so ``experiments.validate`` can use ``build.py`` without a cycle.
"""

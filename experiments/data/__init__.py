"""Datasets of the experiments, one module each: its pinned artifacts (``ARTIFACTS``), their
unpacking, its loader and its tasks (``@registry.task``). :mod:`experiments.data.registry`
collects them; :mod:`experiments.data.fetch` downloads, verifies and caches any artifact
without knowing the datasets. Shared parts: :mod:`~experiments.data.pretrained` (model
weights and tokenizer files), :mod:`~experiments.data.tokenization`,
:mod:`~experiments.data.text`, :mod:`~experiments.data.examples`,
:mod:`~experiments.data.rdata_lite`; :mod:`~experiments.data.tfds_sources` holds the
tensorflow-datasets tasks and their checks. This package never imports
:mod:`experiments.models`."""

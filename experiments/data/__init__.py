"""Datasets of the experiments: fetch, one module per dataset, TFDS sources."""

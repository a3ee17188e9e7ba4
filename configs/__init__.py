"""Experiment configs: each ``configs/<family>.py`` has ``get_config(variant)``."""

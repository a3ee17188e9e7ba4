"""The errors a user can fix, shared by every command (kept free of heavy imports, so a
command's ``--help`` and its one-line errors need neither jax nor tailopt)."""


class UserError(Exception):
  """Something the user can fix: the message names the field or file and the fix."""


class ConfigError(UserError, ValueError):
  """A config field is wrong. The message names the field and the fix (one line each)."""

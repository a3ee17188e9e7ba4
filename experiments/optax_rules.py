"""Single-node optax rules as the inner (or outer) rule of a named method, by name or file.

A config's ``optax_rules.inner`` (``optax_rules.outer``) replaces the inner (outer) transform
of ``config.method`` with ``make(learning_rate)`` at the method's ``inner_lr``
(``outer_lr``): ``make`` is one of :data:`RULES` (``'lion'``, ``'sign_sgd'``, ...) or a
user's ``'path/to/file.py:make'``. Empty strings (the default) change nothing::

    python -m experiments.main --config configs/synthetic.py --workdir /tmp/r \\
        --config.method=avg-sgd --config.optax_rules.inner=lion --config.hparams.inner_lr=1e-3

``make(learning_rate)`` must return an ``optax.GradientTransformation``; anything else is a
one-line :class:`~experiments.errors.UserError` naming the file and the fix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os

import optax

import tailopt
from experiments.errors import UserError

# Our choices of the fixed hyperparameters of each rule (the learning rate is tuned).
CLIP_NORM = 1.0  # clip_by_global_norm's max norm (the synthetic study's inner u = 1)
AGC_CLIPPING = 0.1  # adaptive_grad_clip: max unit-wise ||g|| / ||w||


def _clip_sgd(learning_rate):
  return optax.chain(optax.clip_by_global_norm(CLIP_NORM), optax.sgd(learning_rate))


def _agc_sgd(learning_rate):
  return optax.chain(optax.adaptive_grad_clip(AGC_CLIPPING), optax.sgd(learning_rate))


def _normalized_sgd(learning_rate):
  return optax.chain(optax.normalize_by_update_norm(scale_factor=1.0), optax.sgd(learning_rate))


def _sign_sgd(learning_rate):
  return optax.chain(optax.scale_by_sign(), optax.sgd(learning_rate))


def _zclip_sgd(learning_rate):
  return optax.chain(tailopt.zclip(), optax.sgd(learning_rate))


RULES = {
  "clip_sgd": _clip_sgd,  # optax.clip_by_global_norm(1.0) + sgd
  "agc_sgd": _agc_sgd,  # optax.adaptive_grad_clip(0.1) + sgd
  "normalized_sgd": _normalized_sgd,  # optax.normalize_by_update_norm + sgd
  "sign_sgd": _sign_sgd,  # optax.scale_by_sign + sgd
  "lion": optax.lion,
  "zclip_sgd": _zclip_sgd,  # tailopt.zclip() (z = 2.5, beta = 0.97) + sgd
}


@dataclasses.dataclass(frozen=True)
class Factory:
  """A resolved rule: ``make(learning_rate)``, the spec it came from and (for a user's file)
  the sha256 of the file's text."""

  make: object
  spec: str
  sha256: str = ""

  def __call__(self, learning_rate) -> optax.GradientTransformation:
    return self.make(learning_rate)


def resolve(spec: str, flag: str = "optax_rules.inner") -> Factory:
  """The factory of ``spec``: a name in :data:`RULES` or ``'file.py:function'`` (a one-line
  UserError for a missing file or function, or one that fails to import)."""
  if spec in RULES:
    return Factory(RULES[spec], spec)
  path, sep, func = spec.rpartition(":")
  if not sep or not path.endswith(".py") or not func:
    raise UserError(
      f"{flag}={spec!r}: give FILE.py:FUNCTION (e.g. my_opt.py:make) or one of "
      f"{', '.join(sorted(RULES))}."
    )
  if not os.path.isfile(path):
    raise UserError(f"{flag}: file {path!r} does not exist; give the path of a .py file.")
  text = open(path, "rb").read()
  name = "tailopt_user_rule_" + hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:12]
  mod_spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(mod_spec)
  try:
    mod_spec.loader.exec_module(module)
  except Exception as e:  # noqa: BLE001 - a broken user file is the user's to fix
    first = str(e).splitlines()[0] if str(e) else ""
    raise UserError(f"{flag}: {path} failed to import: {type(e).__name__}: {first}") from e
  make = getattr(module, func, None)
  if not callable(make):
    raise UserError(
      f"{flag}: {path} has no function {func!r}; define {func}(learning_rate) returning "
      "an optax.GradientTransformation."
    )
  return Factory(make, spec, hashlib.sha256(text).hexdigest())


def build(factory: Factory, learning_rate, flag: str = "optax_rules.inner"):
  """``factory(learning_rate)``, checked to be an ``optax.GradientTransformation``."""
  try:
    tx = factory(learning_rate)
  except Exception as e:  # noqa: BLE001 - a broken user function is the user's to fix
    first = str(e).splitlines()[0] if str(e) else ""
    raise UserError(
      f"{flag}: {factory.spec}({learning_rate}) failed with {type(e).__name__}: {first}"
    ) from e
  if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
    raise UserError(
      f"{flag}: {factory.spec}({learning_rate}) returned {type(tx).__name__}, not an "
      "optax.GradientTransformation; return e.g. optax.sgd(learning_rate)."
    )
  return tx


def apply(method: tailopt.Method, rules, hparams: dict) -> tailopt.Method:
  """``method`` with its inner/outer replaced as ``rules`` (``config.optax_rules``) says, at
  the method's ``inner_lr``/``outer_lr`` (``hparams``: the method's resolved values)."""
  inner, outer = (rules.get("inner") or ""), (rules.get("outer") or "")
  if not inner and not outer:
    return method
  changes = dict(name=f"{method.name}[{inner or '-'}|{outer or '-'}]")
  for level, spec in (("inner", inner), ("outer", outer)):
    if spec:
      flag = f"optax_rules.{level}"
      changes[level] = build(resolve(spec, flag), hparams[f"{level}_lr"], flag)
      changes[f"{level}_rule"] = None
      if level == "outer":
        changes["outer_clip"] = None
  return dataclasses.replace(method, **changes)

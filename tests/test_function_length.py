"""The project rule: no function or method in ``tailopt/`` or ``experiments/engines/`` over
80 lines.

A function's length counts from its ``def`` line to the end of its body, not counting the
lines of its docstring (a long docstring is not penalised); decorators are not counted.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "tailopt")
PACKAGES = [PACKAGE, os.path.join(ROOT, "experiments", "engines")]
MAX_LINES = 80


def _docstring_lines(node) -> int:
  body = node.body
  if (
    body
    and isinstance(body[0], ast.Expr)
    and isinstance(body[0].value, ast.Constant)
    and isinstance(body[0].value.value, str)
  ):
    return body[0].end_lineno - body[0].lineno + 1
  return 0


def function_lengths(path):
  """``(line, name, length)`` of every function and method in a file (nested ones too)."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), filename=path)
  out = []
  for node in ast.walk(tree):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      length = node.end_lineno - node.lineno + 1 - _docstring_lines(node)
      out.append((node.lineno, node.name, length))
  return out


def _python_files(root):
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
    for name in sorted(filenames):
      if name.endswith(".py"):
        yield os.path.join(dirpath, name)


def test_the_counter_skips_docstrings(tmp_path):
  src = 'def f(x):\n  """Doc.\n\n  More.\n  """\n  y = x\n  return y\n\n\ndef g():\n  pass\n'
  (tmp_path / "m.py").write_text(src)
  assert function_lengths(str(tmp_path / "m.py")) == [(1, "f", 3), (10, "g", 2)]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_no_function_over_80_lines(package):
  files = list(_python_files(package))
  assert files, f"no Python files under {package}"
  long = []
  for path in files:
    rel = os.path.relpath(path, ROOT)
    for line, name, length in function_lengths(path):
      if length > MAX_LINES:
        long.append(f"{rel}:{line} {name} {length}")
  assert not long, (
    f"functions over {MAX_LINES} lines (def to end of body, docstring not counted); "
    "split them into named helpers:\n" + "\n".join(long)
  )

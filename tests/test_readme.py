"""Every ```python block of README.md runs, and none raises.

The convention (the comment above the README's first Python block points here):

- **Which blocks.** Only fenced blocks opened with ```python run. Shell commands (the
  indented blocks, or ```bash / ```sh fences) are never executed.
- **One namespace, in order.** The blocks run top to bottom in one shared namespace, as if
  pasted one after another into a single Python session: a block may use the names an
  earlier block defined (``loss_fn``, ``method``, ``params``, ``batch``, ...) and nothing
  else.
- **Placeholders.** A line ``name = ...`` (a bare ``...`` as the whole value; a comment may
  follow) stands for the reader's own data. The test replaces that ``...`` with the stand-in
  ``STAND_INS[name]`` builds; a placeholder without a stand-in fails the test, naming it.
  Today there is one: ``batch``, a small batch for the README's round (16 clients, z = 4
  local steps, 8 examples each, 20 features: ``x`` and ``y``).
- **Errors.** Line numbers are kept, so a traceback points at README.md's own lines, and a
  failure names the block's heading and the README line that raised.
"""

import dataclasses
import pathlib
import re
import traceback

import numpy as np
import pytest

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"

_FENCE = re.compile(r"^ {0,3}(```+|~~~+)\s*([\w+-]*)")
_PLACEHOLDER = re.compile(r"^(\s*)([A-Za-z_]\w*)(\s*=\s*)\.\.\.(\s*(#.*)?)$")


def _batch():
  """The README's round: 16 clients, z = 4, 8 examples of 20 features per local step."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(16, 4, 8, 20)).astype(np.float32)
  return {"x": x, "y": x @ rng.normal(size=20).astype(np.float32) + 0.5}


STAND_INS = {"batch": _batch}


@dataclasses.dataclass
class Block:
  heading: str  # the nearest heading above the block
  line: int  # README line of the block's first code line (1-based)
  source: str


def python_blocks(text: str) -> list:
  """The ```python blocks of a Markdown text, in order, with their heading and first line."""
  blocks, heading, fence, body, lang = [], "(top of file)", None, [], ""
  for i, line in enumerate(text.splitlines(), start=1):
    m = _FENCE.match(line)
    if fence is None:
      if m:
        fence, lang, body, start = m.group(1), m.group(2).lower(), [], i + 1
      elif line.startswith("#"):
        heading = line.lstrip("#").strip()
    elif m and m.group(1).startswith(fence) and not m.group(2):
      if lang in ("python", "py"):
        blocks.append(Block(heading, start, "\n".join(body)))
      fence = None
    else:
      body.append(line)
  return blocks


def fill_placeholders(source: str) -> str:
  """``name = ...`` -> ``name = __stand_in__("name")``; line numbers are kept."""

  def sub(m):
    return f'{m.group(1)}{m.group(2)}{m.group(3)}__stand_in__("{m.group(2)}"){m.group(4)}'

  return "\n".join(_PLACEHOLDER.sub(sub, line) for line in source.splitlines())


def _stand_in(name):
  if name not in STAND_INS:
    raise NameError(f"README placeholder `{name} = ...` has no stand-in in tests/test_readme.py")
  return STAND_INS[name]()


def run_blocks(blocks, filename=str(README)):
  """Runs the blocks in order in one namespace; fails naming the heading and line."""
  ns = {"__name__": "__readme__", "__stand_in__": _stand_in}
  for b in blocks:
    code = compile("\n" * (b.line - 1) + fill_placeholders(b.source), filename, "exec")
    try:
      exec(code, ns)
    except Exception as e:
      frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == filename]
      at = frames[-1].lineno if frames else b.line
      failure = (
        f"README.md, the Python block under '{b.heading}' (line {b.line}) raised at line "
        f"{at}: {type(e).__name__}: {e}\n\n{''.join(traceback.format_exception(e)[-12:])}"
      )
    else:
      continue
    pytest.fail(failure, pytrace=False)  # outside the except: no chained traceback
  return ns


def test_readme_python_blocks_run():
  blocks = python_blocks(README.read_text())
  assert len(blocks) >= 4, [b.heading for b in blocks]
  run_blocks(blocks)


_SAMPLE = """# Title

    python -m not.run   # an indented shell block: not run

```bash
exit 1
```

## First

```python
x = 1
data = ...  # your data
```

## Second

```python
y = x + data["y"][0, 0, 0] * 0
```

```python
print(undefined_name)
```
"""


def test_extraction_placeholders_and_failure_report():
  blocks = python_blocks(_SAMPLE)
  assert [(b.heading, b.line) for b in blocks] == [("First", 12), ("Second", 19), ("Second", 23)]
  assert 'data = __stand_in__("data")  # your data' in fill_placeholders(blocks[0].source)
  with pytest.raises(pytest.fail.Exception, match=r"no stand-in"):
    run_blocks(blocks[:1], filename="<sample>")
  STAND_INS["data"] = _batch
  try:
    ns = run_blocks(blocks[:2], filename="<sample>")
    assert ns["y"] == 1
    with pytest.raises(
      pytest.fail.Exception, match=r"under 'Second' \(line 23\) raised at line 23: NameError"
    ):
      run_blocks(blocks, filename="<sample>")
  finally:
    del STAND_INS["data"]

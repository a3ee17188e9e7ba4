"""Executes every notebook in notebooks/ top to bottom; a cell that raises fails the test.

Each notebook runs from a temporary copy (the checked-in file is never modified) in a fresh
``python3`` kernel whose working directory is ``notebooks/``, as when a user opens it there:
``tailopt``, ``experiments`` and ``configs`` must import from the installed project. Every
notebook is committed with its outputs (so a reader sees the plots); the test checks that
every code cell of the checked-in file has been run. Notebooks added to notebooks/ later are picked up by the glob.
The executed copy is left in pytest's tmp_path for inspection when a test fails.
"""

import pathlib
import shutil
import subprocess
import sys

import pytest

# Behind `slow` (the default suite keeps one smoke per entry path: tests/test_smoke.py).
pytestmark = pytest.mark.slow

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
kernelspec = pytest.importorskip("jupyter_client.kernelspec")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
KERNEL_NAME = "python3"


@pytest.fixture(scope="session")
def python3_kernel():
  """Makes sure a ``python3`` kernel spec exists (a fresh CI machine may have none)."""
  if KERNEL_NAME not in kernelspec.find_kernel_specs():
    subprocess.run(
      [sys.executable, "-m", "ipykernel", "install", "--user", "--name", KERNEL_NAME],
      check=True,
      capture_output=True,
    )
    assert KERNEL_NAME in kernelspec.find_kernel_specs(), (
      f"`{sys.executable} -m ipykernel install --user` did not register a "
      f"{KERNEL_NAME!r} kernel spec"
    )
  return KERNEL_NAME


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, python3_kernel, tmp_path):
  copy = tmp_path / path.name
  shutil.copy(path, copy)
  nb = nbformat.read(copy, as_version=4)
  client = nbclient.NotebookClient(
    nb,
    timeout=600,
    kernel_name=python3_kernel,
    resources={"metadata": {"path": str(REPO_ROOT / "notebooks")}},
  )  # kernel cwd = notebooks/
  try:
    client.execute()  # raises CellExecutionError on the first failing cell
  finally:
    nbformat.write(nb, copy)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_with_its_outputs(path):
  nb = nbformat.read(path, as_version=4)
  code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
  unrun = [i for i, c in enumerate(code) if c.get("execution_count") is None]
  assert not unrun, f"{path.name}: code cells {unrun} have no outputs; run it and save it"
  assert any(o.get("output_type") == "display_data" for c in code for o in c.outputs), (
    f"{path.name} has no plot in its outputs"
  )

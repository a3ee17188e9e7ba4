"""No import cycles in the repository: the graph of every module under ``tailopt/``,
``experiments/`` and ``configs/``, read with ``ast``, has no cycle.

What counts as an edge ``a -> b`` (module ``a`` imports module ``b``):

* every ``import b`` and ``from b import x`` statement in ``a``, wherever it is: at module
  level, inside a function, a method or an ``if`` (a function-level import is still an import
  cycle, only deferred to the first call);
* ``from p import x`` names module ``p.x`` when ``p.x`` is a module of the repository, else
  module ``p`` (``x`` is then an attribute of ``p``); relative imports are resolved against
  ``a``'s package;
* importing ``p.q`` is an edge to ``p.q`` only: the parent packages it also runs are not
  counted (every submodule that imports a sibling would otherwise close a loop through its
  package's ``__init__``).

Not edges: modules outside the three folders, and loads by a string name
(``importlib.import_module``), which is how the registries (``experiments.models.registry``,
``experiments.data.registry``) load plug-in modules on demand.
"""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("tailopt", "experiments", "configs")


def _modules(root: str) -> dict[str, str]:
  """``{module name: path}`` of every ``.py`` file under the :data:`PACKAGES` of ``root``."""
  out = {}
  for top in PACKAGES:
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
      dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
      for name in sorted(filenames):
        if not name.endswith(".py"):
          continue
        rel = os.path.relpath(os.path.join(dirpath, name), root)[: -len(".py")]
        parts = rel.split(os.sep)
        if parts[-1] == "__init__":
          parts = parts[:-1]
        out[".".join(parts)] = os.path.join(dirpath, name)
  return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
  """The absolute module name a (possibly relative) ``from ... import`` starts from."""
  if not node.level:
    return node.module or ""
  base = module.split(".") if is_package else module.split(".")[:-1]
  base = base[: len(base) - (node.level - 1)]
  return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: str, known: set[str]) -> set[str]:
  """Repository modules that ``module`` (file ``path``) imports, at any level of the file."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), filename=path)
  is_package = os.path.basename(path) == "__init__.py"
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out.update(a.name for a in node.names if a.name in known)
    elif isinstance(node, ast.ImportFrom):
      base = _resolve(module, is_package, node)
      for a in node.names:
        sub = f"{base}.{a.name}" if base else a.name
        if sub in known:
          out.add(sub)
        elif base in known:
          out.add(base)
  out.discard(module)
  return out


def import_graph(root: str = ROOT) -> dict[str, set[str]]:
  """``{module: modules it imports}`` over the repository at ``root``."""
  mods = _modules(root)
  known = set(mods)
  return {m: imports_of(m, p, known) for m, p in mods.items()}


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
  """One cycle through the strongly connected ``component``: ``[a, b, ..., a]``."""
  start = min(component)
  parent, frontier = {start: None}, [start]
  while frontier:  # breadth first, so the cycle printed is a shortest one through ``start``
    nxt = []
    for m in frontier:
      for n in sorted(graph[m] & component):
        if n == start:
          path = [m]
          while parent[path[-1]] is not None:
            path.append(parent[path[-1]])
          return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, m, start]
        if n not in parent:
          parent[n] = m
          nxt.append(n)
    frontier = nxt
  raise AssertionError(f"{sorted(component)} is not strongly connected")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """One cycle per strongly connected component of more than one module (Tarjan)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph[v]):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      comp = set()
      while True:
        w = stack.pop()
        on_stack.discard(w)
        comp.add(w)
        if w == v:
          break
      if len(comp) > 1:
        found.append(_cycle_in(graph, comp))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return sorted(found)


def test_the_graph_reads_every_kind_of_import(tmp_path):
  pkg = tmp_path / "experiments"
  (pkg / "sub").mkdir(parents=True)
  (pkg / "__init__.py").write_text("")
  (pkg / "sub" / "__init__.py").write_text("from . import a\n")
  (pkg / "sub" / "a.py").write_text("def f():\n  from experiments.sub import b\n")
  (pkg / "sub" / "b.py").write_text("from .c import X\nimport experiments.d\n")
  (pkg / "sub" / "c.py").write_text("from ..d import Y\n")
  (pkg / "d.py").write_text("import os\nfrom experiments import sub\n")
  g = import_graph(str(tmp_path))
  assert g == {
    "experiments": set(),
    "experiments.sub": {"experiments.sub.a"},
    "experiments.sub.a": {"experiments.sub.b"},  # function-level: counted
    "experiments.sub.b": {"experiments.sub.c", "experiments.d"},
    "experiments.sub.c": {"experiments.d"},
    "experiments.d": {"experiments.sub"},
  }
  assert cycles(g) == [
    [
      "experiments.d",
      "experiments.sub",
      "experiments.sub.a",
      "experiments.sub.b",
      "experiments.d",
    ]
  ]


#: Cycles allowed for now (none: the repository has no import cycle). A listed cycle that no
#: longer exists fails the test, so the list cannot go stale.
KNOWN_CYCLES: set = set()


def test_no_import_cycles():
  graph = import_graph()
  assert "experiments.data.fetch" in graph and "tailopt.rounds" in graph
  found = cycles(graph)
  new = [c for c in found if frozenset(c) not in KNOWN_CYCLES]
  assert not new, "import cycles (break each one):\n" + "\n".join(" -> ".join(c) for c in new)
  gone = KNOWN_CYCLES - {frozenset(c) for c in found}
  assert not gone, f"KNOWN_CYCLES lists cycles that are gone; remove them: {gone}"


def test_data_imports_no_models():
  """``experiments.data`` is below the models and the runner: models may import data (files,
  tokenizers), never the other way round."""
  graph = import_graph()
  in_data = lambda m: m == "experiments.data" or m.startswith("experiments.data.")  # noqa: E731
  bad = sorted(
    f"{m} -> {n}"
    for m, deps in graph.items()
    if in_data(m)
    for n in deps
    if n.startswith("experiments.") and not in_data(n)
  )
  assert not bad, "experiments.data imports outside itself:\n" + "\n".join(bad)

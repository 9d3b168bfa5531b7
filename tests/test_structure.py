"""The library's import structure: no cycles, and no import from a lower layer
to a higher one. Every ``import`` of a baselax module counts, at module level
or inside a function (a function-local import hides a cycle, it does not
remove it)."""

import ast
import os

import helpers

ROOT = os.path.join(helpers.REPO, "baselax")

#: Bottom to top: a package may import its own layer and the layers below it.
#: Layers list packages (and the foundation's single modules), never a module
#: of one package declared to sit in another package's layer.
LAYERS = (
    ("foundation", ("baselax", "baselax._lazy", "baselax.errors", "baselax.metrics",
                    "baselax.hardware")),
    ("the training core", ("baselax.training",)),
    ("environments and networks", ("baselax.envs", "baselax.networks")),
    ("agents", ("baselax.agents",)),
    ("replay", ("baselax.replay",)),
    ("the learner", ("baselax.learner",)),
    ("trainers", ("baselax.anakin", "baselax.hostloop")),
    ("experiments", ("baselax.experiment", "baselax.atari", "baselax.bench")),
    # The program: ``baselax`` / ``python -m baselax`` runs the experiments' commands.
    ("the command", ("baselax.__main__",)),
)


def modules():
  """``{module name: path}`` of every module under ``baselax/``."""
  found = {}
  for folder, _, files in os.walk(ROOT):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        module = os.path.relpath(path, helpers.REPO)[:-3].replace(os.sep, ".")
        found[module[:-len(".__init__")] if module.endswith(".__init__") else module] = path
  return found


def imported(path, known):
  """The baselax modules ``path`` imports (``from pkg import mod`` names ``pkg.mod``)."""
  out = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
        node.module == "baselax" or node.module.startswith("baselax.")):
      for alias in node.names:
        full = f"{node.module}.{alias.name}"
        out.add(full if full in known else node.module)
    elif isinstance(node, ast.Import):
      out.update(a.name for a in node.names if a.name.split(".")[0] == "baselax")
  return out


def layer(module):
  best = max(((len(prefix), i) for i, (_, prefixes) in enumerate(LAYERS)
              for prefix in prefixes
              if module == prefix or module.startswith(prefix + ".")), default=None)
  assert best is not None, f"{module} is in no layer: add it to LAYERS"
  return best[1]


def graph():
  known = modules()
  return {m: sorted(imported(p, known) - {m}) for m, p in known.items()}


def test_no_import_goes_up_a_layer():
  upward = [f"{m} ({LAYERS[layer(m)][0]}) imports {dep} ({LAYERS[layer(dep)][0]})"
            for m, deps in graph().items() for dep in deps if layer(dep) > layer(m)]
  assert upward == []


def test_no_import_cycle():
  edges = graph()
  state, cycles = {}, []

  def visit(module, path):
    state[module] = "open"
    for dep in edges.get(module, ()):
      if state.get(dep) == "open":
        cycles.append(path[path.index(dep):] + [dep])
      elif dep not in state:
        visit(dep, path + [dep])
    state[module] = "done"

  for module in sorted(edges):
    if module not in state:
      visit(module, [module])
  assert cycles == []


def test_the_checks_see_what_they_check():
  """The walk finds the edges that matter (so an empty result means something)."""
  edges = graph()
  assert "baselax.replay.buffers" in edges["baselax.anakin.loop"]
  assert "baselax.experiment.rundir" in edges["baselax.atari"]  # from ... import rundir
  assert layer("baselax.replay.store") < layer("baselax.anakin.loop")
  assert layer("baselax.training.config") == 1 and layer("baselax.anakin.runner") == 6
  assert layer("baselax.anakin.config") == layer("baselax.anakin.runner")

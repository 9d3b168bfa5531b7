"""Griffe extensions for the API reference (loaded by mkdocs.yml).

* ``LazyExports``: ``baselax.envs`` and ``baselax.anakin`` import their names
  on first use (``baselax/_lazy.py``): a ``_WHERE = {name: module}`` dict
  and a module ``__getattr__``. Static analysis sees no ``baselax.envs.make``;
  this adds each name as an alias of ``submodule.name``, so the reference
  documents ``baselax.envs.make`` under the path users import it from.
* ``SphinxRoles``: the docstrings cross-reference with Sphinx roles
  (``:class:`~baselax.agents.DQN```), which Markdown would print as they are.
  Each becomes a link to the object where the site documents it, and plain
  code where it does not (an optional cross-reference: never a warning).
"""

import ast
import html
import re

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|obj|exc):`(~?)([\w.]+)`")


class LazyExports(griffe.Extension):
  """Adds the aliases of every module's ``_WHERE`` dict."""

  def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
    for module in _modules(pkg):
      where = module.members.get("_WHERE")
      if where is None or where.is_alias or where.value is None:
        continue
      names = ast.literal_eval(str(where.value))
      for name, submodule in names.items():
        # A full module name: a name re-exported from where its code lives.
        where_from = submodule if submodule.startswith("baselax.") else (
            f"{module.path}.{submodule}")
        module.set_member(name, griffe.Alias(name, f"{where_from}.{name}", parent=module))
      module.exports = list(names)


class SphinxRoles(griffe.Extension):
  """Rewrites ``:role:`target``` in every docstring of the package."""

  def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
    for obj in _objects(pkg):
      if obj.docstring is not None and ":`" in obj.docstring.value:
        obj.docstring.value = ROLE.sub(lambda m: _reference(obj, m), obj.docstring.value)


def _reference(obj: griffe.Object, match: "re.Match") -> str:
  short, target = match.group(1) == "~", match.group(2)
  title = target.rsplit(".", 1)[-1] if short else target
  try:  # a name relative to the object (``AgentContract``, ``make_replay``)
    identifier = obj.resolve(target.split(".", 1)[0])
    if "." in target:
      identifier += "." + target.split(".", 1)[1]
  except griffe.NameResolutionError:
    identifier = target
  return (f'<autoref optional identifier="{html.escape(identifier)}">'
          f"<code>{html.escape(title)}</code></autoref>")


def _modules(module: griffe.Module):
  yield module
  for member in list(module.members.values()):
    if not member.is_alias and member.is_module:
      yield from _modules(member)


def _objects(obj: griffe.Object):
  yield obj
  for member in list(obj.members.values()):
    if not member.is_alias:
      yield from _objects(member)

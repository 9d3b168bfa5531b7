"""Lazy package attributes (PEP 562), shared by the packages that need them.

Importing gymnax starts JAX's backend, and ``jax.distributed.initialize``
must run before that; so packages whose modules import gymnax expose their
names lazily: a name is imported when first used.
"""

import importlib
from collections.abc import Callable, Sequence


def lazy_attributes(
  package: str, where: dict[str, str], submodules: Sequence[str]
) -> tuple[Callable, Callable]:
  """``(__getattr__, __dir__)`` for ``package``.

  Args:
    package: the package's ``__name__``.
    where: ``{name: module}``: ``package.name`` is ``package.module.name``, or
      ``module.name`` when ``module`` is a full name (``baselax....``: a name
      re-exported from where its code lives).
    submodules: submodules importable as ``package.submodule``.
  """

  def __getattr__(name):
    if name in where:
      module = where[name]
      full = module if module.startswith("baselax.") else f"{package}.{module}"
      return getattr(importlib.import_module(full), name)
    if name in submodules:
      return importlib.import_module(f"{package}.{name}")
    raise AttributeError(f"module {package!r} has no attribute {name!r}")

  def __dir__():
    return sorted([*where, *submodules])

  return __getattr__, __dir__

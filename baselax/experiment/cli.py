"""A command line generated from frozen dataclasses: one flag per field.

Flags are the field names with dashes and no prefix (``total_env_steps`` ->
``--total-env-steps``); defaults and help text come from the dataclasses
themselves (help from the ``Attributes:`` section of their docstrings), so
there is no second, hand-kept list of flags.

Every refusal is one line on stderr naming the flag, and exit code 2 (a
usage error): :func:`usage_error` for problems found after parsing (a
``ConfigError`` of the library), the parser itself for the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, NoReturn


class OneLineParser(argparse.ArgumentParser):
  """An ``ArgumentParser`` whose errors are one line (no usage block), exit 2,
  that start with the flag they are about.

  Args:
    unknown_hint: what to say about a flag it does not know (default: see
      ``--help``).
  """

  def __init__(self, *args, unknown_hint: str | None = None, **kwargs):
    super().__init__(*args, **kwargs)
    self.unknown_hint = unknown_hint or f"see {self.prog} --help"

  def error(self, message: str) -> NoReturn:
    unknown = re.match(r"unrecognized arguments: (.*)", message)
    if unknown:
      usage_error(f"{unknown.group(1)}: no such flag ({self.unknown_hint})", prog=self.prog)
    # argparse's own: "argument --flag: invalid int value: 'x'".
    message = re.sub(r"^argument (--[\w-]+)(/[^:]*)?:", r"\1:", message)
    usage_error(f"{message} (see {self.prog} --help)", prog=self.prog)


def positive_int(text: str) -> int:
  """An argparse ``type``: an integer >= 1 (else the one-line error names the flag)."""
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
  if value < 1:
    raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
  return value


def usage_error(message: str | Exception, prog: str | None = None) -> NoReturn:
  """Prints ``prog: error: message`` as one line on stderr and exits with 2."""
  prog = prog or (sys.argv[0].rsplit("/", 1)[-1] if sys.argv and sys.argv[0] else "baselax")
  text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
  print(f"{prog}: error: {text}", file=sys.stderr, flush=True)
  raise SystemExit(2)


def invocation(prog: str, argv0: str | None = None) -> str:
  """The command the user typed to run ``prog``, as a resume hint repeats it:
  ``baselax train`` (the console script), ``python -m baselax train``, or
  ``python experiments/anakin_dqn.py`` (a script, as the user named it)."""
  argv0 = sys.argv[0] if argv0 is None else argv0
  command = prog.split(" ", 1)[1] if prog.startswith("baselax ") else None
  if command and os.path.basename(argv0) == "baselax":
    return f"baselax {command}"
  if command and argv0.replace(os.sep, "/").endswith("baselax/__main__.py"):
    return f"python -m baselax {command}"
  if argv0.endswith(".py"):
    shown = os.path.relpath(argv0) if os.path.isabs(argv0) else argv0
    return f"python {shown}"
  return prog


def flag_name(field: str) -> str:
  return "--" + field.replace("_", "-")


def name_the_flag(message: str, sections: Sequence[tuple[type, dict[str, Any]]]) -> str:
  """Prefixes ``message`` with the flag (and value) it is about, when it names a field.

  Library errors name config fields (``num_envs must be ...``); on the
  command line the user typed ``--num-envs``. Of the fields the message
  names, one the user changed from its default is preferred.

  Args:
    sections: ``(dataclass type, {field: value})`` of each config section.
  """
  if message.startswith("--"):
    return message  # it names its flag already
  named = []
  for cls, values in sections:
    for field in dataclasses.fields(cls):
      if re.search(rf"\b{field.name}\b", message):
        value = values[field.name]
        changed = value != field.default
        named.append((not changed, message.find(field.name), field.name, value))
  if not named:
    return message
  _, _, name, value = min(named)
  shown = " ".join(map(str, value)) if isinstance(value, tuple) else value
  return f"{flag_name(name)} {shown}: {message}"


def _attribute_docs(cls: type) -> dict[str, str]:
  """Parses ``name: text`` entries of a Google-style ``Attributes:`` section."""
  docs: dict[str, str] = {}
  for klass in reversed(cls.__mro__):
    text = klass.__doc__ or ""
    match = re.search(r"Attributes:\n(.*?)(\n\s*\n|\Z)", text, re.S)
    if not match:
      continue
    current = None
    for line in match.group(1).splitlines():
      entry = re.match(r"\s{2,}(\w+): (.*)", line)
      if entry and entry.group(1) in {f.name for f in dataclasses.fields(cls)}:
        current = entry.group(1)
        docs[current] = entry.group(2).strip()
      elif current and line.strip():
        docs[current] += " " + line.strip()
  return docs


#: What ``none`` parses to in a list flag: ``--hidden-sizes none`` is ``()``.
NONE = type("NoneToken", (), {"__repr__": lambda self: "none"})()


def _as_tuple(name: str, value: list) -> tuple:
  if NONE in value:
    if len(value) > 1:
      raise ValueError(
        f"{flag_name(name)}: none stands alone (no values), got {' '.join(map(repr, value))}."
      )
    return ()
  return tuple(value)


def integer(text: str) -> int:
  """An integer flag's value; a whole number in float notation too
  (``--total-env-steps 5e6``)."""
  try:
    return int(text)
  except ValueError:
    value = float(text)  # ValueError: not a number at all
    if not value.is_integer():
      raise ValueError(f"{text} is not a whole number") from None
    return int(value)


integer.__name__ = "int"


def _parser_for(tp: Any):
  """Returns ``(type_fn, nargs)`` for a field type."""
  origin = typing.get_origin(tp)
  args = typing.get_args(tp)
  if origin in (typing.Union, types.UnionType) and type(None) in args:  # X | None
    inner = [a for a in args if a is not type(None)][0]
    type_fn, nargs = _parser_for(inner)

    def optional(text, _f=type_fn):
      return None if text.lower() == "none" else _f(text)

    optional.__name__ = getattr(type_fn, "__name__", "value") + " or None"
    return optional, nargs
  if origin in (tuple, tuple):
    inner = _parser_for(args[0])[0]

    def item(text, _f=inner):  # "none" alone: the empty tuple
      return NONE if text.lower() == "none" else _f(text)

    item.__name__ = getattr(inner, "__name__", "value")
    return item, "+"
  if tp is int:
    return integer, None
  if tp in (float, str):
    return tp, None
  raise TypeError(f"unsupported field type {tp!r}")


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type, title: str) -> None:
  """Adds one ``--field-name`` flag per field of the dataclass ``cls``."""
  group = parser.add_argument_group(title)
  hints = typing.get_type_hints(cls)
  docs = _attribute_docs(cls)
  for field in dataclasses.fields(cls):
    flag = flag_name(field.name)
    tp = hints[field.name]
    default: typing.Any = field.default  # config fields all have plain defaults
    help_text = f"{docs.get(field.name, '')} (default: {default})"
    if tp is bool:
      group.add_argument(
        flag,
        dest=field.name,
        default=default,
        action=argparse.BooleanOptionalAction,
        help=help_text,
      )
      continue
    type_fn, nargs = _parser_for(tp)
    if field.metadata.get("repeatable"):  # --flag A --flag B == --flag A B
      group.add_argument(
        flag,
        dest=field.name,
        type=type_fn,
        nargs="+",
        action="extend",
        default=list(default),
        help=help_text,
      )
      continue
    group.add_argument(
      flag, dest=field.name, type=type_fn, nargs=nargs, default=default, help=help_text
    )
  # Old names of a setting, kept as flags: --prioritized is --sampling prioritized.
  for alias, (field_name, on, off) in getattr(cls, "FLAG_ALIASES", {}).items():
    group.add_argument(
      flag_name(alias),
      dest=field_name,
      action="store_const",
      const=on,
      default=argparse.SUPPRESS,
      help=f"the same as {flag_name(field_name)} {on}",
    )
    group.add_argument(
      flag_name("no_" + alias),
      dest=field_name,
      action="store_const",
      const=off,
      default=argparse.SUPPRESS,
      help=f"the same as {flag_name(field_name)} {off}",
    )


def build_from_dict(cls: type[Any], values: dict[str, Any]) -> Any:
  """Rebuilds ``cls`` from a saved ``{field: value}`` dict (JSON lists -> tuples)."""
  names = {f.name for f in dataclasses.fields(cls)}
  return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names})


def build(namespace: argparse.Namespace, cls: type[Any]) -> Any:
  """Builds ``cls`` from the parsed flags that belong to it.

  Raises:
    ValueError/TypeError: the dataclass refused a value; the message starts
      with the flag it is about.
  """
  values = {}
  for field in dataclasses.fields(cls):
    value = getattr(namespace, field.name)
    if isinstance(value, list):
      value = _as_tuple(field.name, value)
    values[field.name] = value
  try:
    return cls(**values)
  except (ValueError, TypeError) as error:
    raise type(error)(name_the_flag(str(error), [(cls, values)])) from error


def sections_of(configs: Sequence[Any]) -> list:
  """``[(type, {field: value})]`` of config instances, for :func:`name_the_flag`."""
  return [(type(c), {f.name: getattr(c, f.name) for f in dataclasses.fields(c)}) for c in configs]


def parse(
  classes: Sequence[tuple[type, str]],
  description: str,
  argv=None,
  defaults: dict[str, Any] | None = None,
  check: Callable[[tuple[Any, ...]], str | None] | None = None,
  prog: str | None = None,
  epilog: str | None = None,
  extra: Callable[[argparse.ArgumentParser], None] | None = None,
  unknown_hint: str | None = None,
) -> tuple[Any, ...]:
  """Parses ``argv`` into one instance of each dataclass in ``classes``.

  A value the dataclass rejects (its ``__post_init__`` raises ValueError) is
  reported as a usage error naming the problem, before anything is compiled.

  Args:
    defaults: ``{field name: value}`` replacing the dataclass defaults (a
      resumed run's saved configuration).
    check: called with the parsed instances; a returned message is reported
      as a usage error.
    extra: adds flags that belong to no dataclass (parsed and ignored here).
    unknown_hint: what an unknown flag's error suggests.
  """
  parser = OneLineParser(
    description=description,
    prog=prog,
    epilog=epilog,
    formatter_class=argparse.RawDescriptionHelpFormatter,
    unknown_hint=unknown_hint,
  )
  if extra is not None:
    extra(parser)
  names: set[str] = set()
  for cls, title in classes:
    clash = names & {f.name for f in dataclasses.fields(cls)}
    if clash:
      raise TypeError(f"flag names clash between config classes: {clash}")
    names |= {f.name for f in dataclasses.fields(cls)}
    add_dataclass_flags(parser, cls, title)
  if defaults:
    parser.set_defaults(**{k: v for k, v in defaults.items() if k in names})
  namespace = parser.parse_args(argv)
  try:
    parsed = tuple(build(namespace, cls) for cls, _ in classes)
  except (ValueError, TypeError) as error:
    parser.error(str(error))
  message = check(parsed) if check is not None else None
  if message:
    parser.error(message)
  return parsed

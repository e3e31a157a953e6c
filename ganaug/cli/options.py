"""Command-line options built from the code they configure, so that defaults and help text cannot drift.

- :func:`add_config_options`: one option per field of a config dataclass; the help text is the
  field's comment in the source (nanoGPT's commented defaults), the default is the field's
  default, and the type comes from its annotation.
- :func:`add_function_options`: options for some keyword arguments of a function; the default
  comes from its signature and the help text from its docstring's ``Args:`` section.
- Options shared by several commands (``--device``, ``--seed``, ``--data``...) are declared once
  here.

Options are parsed with default None, and only the options given reach the config or function,
so the dataclass or the signature supplies every default.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import io
import re
import textwrap
import tokenize
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "add_command",
    "add_config_options",
    "add_data_options",
    "add_device_option",
    "add_function_options",
    "add_model_argument",
    "add_seed_option",
    "config_from_args",
    "given",
    "positive_int",
]

DEVICE_HELP = "cpu or cuda (default: cuda when available)"


@functools.cache
def documented(obj: Any, section: str) -> dict[str, str]:
    """The entries of a Google-style docstring section, such as a function's ``Args:``.

    Returns:
        name -> its description, continuation lines joined; an entry ``a, b: text`` documents both.
    """
    docs: dict[str, str] = {}
    match = re.search(rf"(?:^|\n){section}:\n(.*?)(?:\n\S|\n\s*\n|\Z)", inspect.getdoc(obj) or "", re.S)
    current: list[str] = []
    for line in (match.group(1) if match else "").splitlines():
        entry = re.match(r"\s{4}(\w+(?:, \w+)*): (.*)", line)
        if entry:
            current = entry.group(1).split(", ")
            for name in current:
                docs[name] = entry.group(2)
        elif line.strip():
            for name in current:
                docs[name] += " " + line.strip()
    return docs


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """A dataclass's fields as its source comments them, nanoGPT-style: the comment at the end of a field's
    line, after any comment lines directly above it."""
    lines, _ = inspect.getsourcelines(cls)
    comments = {}
    for token in tokenize.generate_tokens(io.StringIO(textwrap.dedent("".join(lines))).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = (token.line[:token.start[1]].strip() == "", token.string[1:].strip())
    tree = ast.parse(textwrap.dedent("".join(lines)))
    docs = {}
    for node in next(node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above, row = [], node.lineno - 1
            while row in comments and comments[row][0]:  # whole-line comments directly above
                above.insert(0, comments[row][1])
                row -= 1
            trailing = [comments[node.lineno][1]] if node.lineno in comments else []
            docs[node.target.id] = " ".join(above + trailing)
    return docs


def _option_kind(annotation: Any) -> dict[str, Any]:
    """argparse keywords for a field or argument of this type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
        origin = typing.get_origin(annotation)
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is tuple:
        args = typing.get_args(annotation)
        return {"type": args[0], "nargs": "+" if args[-1] is Ellipsis else len(args)}
    if annotation in (int, float, str):
        return {"type": annotation}
    if annotation is Path or annotation == (str | Path):
        return {"type": Path}
    raise TypeError(f"no command-line option for a field of type {annotation!r}")


def _option_strings(name: str, aliases: Mapping[str, Iterable[str]]) -> list[str]:
    return [f"--{name.replace('_', '-')}", *aliases.get(name, ())]


def _help(text: str, default: Any) -> str:
    if default is None or default is dataclasses.MISSING or default is inspect.Parameter.empty:
        return text
    if isinstance(default, bool):
        default = "on" if default else "off"
    elif isinstance(default, tuple):
        default = " ".join(map(str, default))
    shown = "''" if default == "" else default  # an empty string, visibly
    return text if "default:" in text else f"{text.rstrip('.')} (default: {shown})"


def add_config_options(parser: argparse.ArgumentParser, cls: type, skip: Iterable[str] = (),
                       aliases: Mapping[str, Iterable[str]] | None = None) -> None:
    """One option per field of the dataclass ``cls`` (but ``skip``); ``aliases``: extra option strings."""
    aliases = aliases or {}
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        default = field.default if field.default is not dataclasses.MISSING else None
        parser.add_argument(*_option_strings(field.name, aliases), dest=field.name, default=None,
                            help=_help(docs.get(field.name, ""), default), **_option_kind(hints[field.name]))


def add_function_options(parser: argparse.ArgumentParser, function: Callable, names: Iterable[str],
                         aliases: Mapping[str, Iterable[str]] | None = None) -> None:
    """Options for the keyword arguments ``names`` of ``function``."""
    aliases = aliases or {}
    signature = inspect.signature(function)
    hints = typing.get_type_hints(function)
    docs = documented(function, "Args")
    for name in names:
        default = signature.parameters[name].default
        parser.add_argument(*_option_strings(name, aliases), dest=name, default=None,
                            help=_help(docs.get(name, ""), default), **_option_kind(hints[name]))


def given(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The options among ``names`` given on the command line (tuples for multi-valued ones)."""
    values = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    return {name: tuple(value) if isinstance(value, list) else value for name, value in values.items()}


def config_from_args(cls: type, args: argparse.Namespace, **values: Any) -> Any:
    """An instance of the dataclass ``cls`` from the options given, plus ``values``; the rest keep their defaults."""
    return cls(**{**given(args, [f.name for f in dataclasses.fields(cls)]), **values})


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (argparse reports the option's name with the error)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"should be a positive int, got {text!r}")
    return value


def add_command(group: Any, name: str, handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    """A subcommand run by ``handler``: its help is the first line of the handler's docstring, its
    description the rest."""
    summary, _, details = (inspect.getdoc(handler) or name).partition("\n\n")
    parser = group.add_parser(name, help=summary[0].lower() + summary[1:].rstrip("."),
                              description=" ".join(details.split()) or summary)
    parser.set_defaults(handler=handler)
    return parser


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    """The positional ``run``: the model a command uses."""
    parser.add_argument("run", help="run directory, exported model folder, or Hugging Face Hub name "
                                     "(org/name or org/name@revision)")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help=DEVICE_HELP)


def add_seed_option(parser: argparse.ArgumentParser, default: int = 0, what: str = "random seed") -> None:
    parser.add_argument("--seed", type=int, default=default, help=f"{what} (default: {default})")


def add_data_options(parser: argparse.ArgumentParser, required: bool = True, split: str | None = "train",
                     size: bool = True) -> None:
    """``--data`` (and ``--split``, whose default is ``split``, ``--image-size``, ``--channels``): what
    :func:`ganaug.load_dataset` reads."""
    parser.add_argument("--data", required=required,
                        help="'fashion-mnist' (or fashion-mnist:debian|download|embedded|root=DIR), or an ImageFolder "
                             "folder (one subfolder per class, or train/ and test/ trees)")
    if split is not None:
        parser.add_argument("--split", default=split, choices=("train", "test"),
                            help=f"which split (default: {split}; a plain folder has only one)")
    if size:
        parser.add_argument("--image-size", type=int, default=None,
                            help="resize images to this square size (default: 28 for Fashion-MNIST; for a folder "
                                 "the images' own size, or their median side when sizes differ)")
        parser.add_argument("--channels", type=int, default=None, choices=(1, 3),
                            help="1 or 3 channels (default: 1 for Fashion-MNIST; for a folder 1 when no image has "
                                 "colour, else 3)")

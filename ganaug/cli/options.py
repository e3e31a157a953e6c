"""Command-line options built from the code they configure, so that defaults and help text cannot drift.

- :func:`add_config_options`: one option per field of a config dataclass; the help text is the
  field's docstring (the string literal under it), the default is the field's default, and the
  type comes from its annotation.
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
import re
import textwrap
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ganaug.data.load import FOLDER_CHANNELS, FOLDER_IMAGE_SIZE

__all__ = [
    "add_config_options",
    "add_data_options",
    "add_device_option",
    "add_function_options",
    "add_seed_option",
    "config_from_args",
    "given",
]

DEVICE_HELP = "cpu or cuda (default: cuda when available)"


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring of each field of a dataclass: the string literal that follows its annotation."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = next(node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)).body
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


@functools.cache
def argument_docs(function: Callable) -> dict[str, str]:
    """The description of each argument in a Google-style docstring's ``Args:`` section."""
    docs: dict[str, str] = {}
    section = re.search(r"\n\s*Args:\n(.*?)(?:\n\s*\n|\Z)", inspect.getdoc(function) or "", re.S)
    if section is None:
        return docs
    current = None
    for line in section.group(1).splitlines():
        match = re.match(r"\s{4}(\w+(?:, \w+)*): (.*)", line)
        if match:
            names, text = match.groups()
            for name in names.split(", "):
                docs[name] = text
            current = names.split(", ")
        elif current and line.strip():
            for name in current:
                docs[name] += " " + line.strip()
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
    return text if "default:" in text else f"{text.rstrip('.')} (default: {default})"


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
    docs = argument_docs(function)
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
                            help=f"resize images to this square size (default: 28 for Fashion-MNIST, "
                                 f"{FOLDER_IMAGE_SIZE} for folders)")
        parser.add_argument("--channels", type=int, default=None, choices=(1, 3),
                            help=f"1 or 3 channels (default: 1 for Fashion-MNIST, {FOLDER_CHANNELS} for folders)")

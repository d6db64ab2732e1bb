"""Command-line options declared on a dataclass's fields: the name, type, default, help and choices of a
setting written once, beside the setting.

``TrainConfig``'s fields are declared with :func:`option`; the ``train`` and ``sweep`` commands build
their options from them (:func:`config_options`), ``sweep`` checks a grid's keys and values against them
and writes a trial's ``train`` command with their flags. A field declared with a plain default has no
option (``command``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import MISSING, dataclass
from typing import Any

METADATA_KEY = "option"


@dataclass(frozen=True)
class Option:
    """How one field appears on the command line. ``help`` may hold ``{default:g}``-style fields, filled
    in with the field's default."""

    help: str | None = None
    flag: str | None = None  # default: --field-name (--no-field-name for a bool that defaults to True)
    choices: Sequence[str] | None = None


def option(default: Any = MISSING, help: str | None = None, *, flag: str | None = None,
           choices: Sequence[str] | None = None) -> Any:
    """A dataclass field with a command-line option; without ``default`` the option is required."""
    return dataclasses.field(default=default, metadata={METADATA_KEY: Option(help, flag, choices)})


@dataclass(frozen=True)
class ConfigOption:
    """A field's option as a parser needs it: flag, argparse destination and keyword arguments."""

    name: str  # the field
    flag: str
    kind: type  # int, float, str or bool
    default: Any
    required: bool
    help: str | None
    choices: Sequence[str] | None

    @property
    def negated(self) -> bool:
        """A bool that defaults to True: its flag (``--no-augment``) turns it off."""
        return self.kind is bool and self.default is True

    @property
    def dest(self) -> str:
        """The attribute argparse stores the option in (``--lr`` → ``lr``, ``--no-augment`` → ``no_augment``)."""
        return self.flag.lstrip("-").replace("-", "_")

    def argparse_kwargs(self, help: str | None = None) -> dict:
        """``add_argument``'s keyword arguments; ``help`` replaces the field's own."""
        text = help if help is not None else self.help
        kwargs: dict[str, Any] = {} if text is None else {"help": text.format(default=self.default)}
        if self.kind is bool:
            return kwargs | {"action": "store_true"}
        if self.required:
            return kwargs | {"required": True}
        if self.kind is not str:
            kwargs["type"] = self.kind
        if self.choices is not None:
            kwargs["choices"] = self.choices
        return {"default": self.default} | kwargs

    def value(self, args: object) -> Any:
        """The field's value from parsed arguments."""
        given = getattr(args, self.dest)
        return not given if self.negated else given


def _kind(annotation: str | type) -> type:
    """``int``, ``float``, ``bool`` or ``str`` from a field's annotation (``int | None`` → ``int``)."""
    text = annotation if isinstance(annotation, str) else annotation.__name__
    first = text.split("|")[0].strip()
    return {"int": int, "float": float, "bool": bool}.get(first, str)


def config_options(config_class: type) -> dict[str, ConfigOption]:
    """The options of ``config_class``'s fields declared with :func:`option`, by field name, in field order."""
    found = {}
    for item in dataclasses.fields(config_class):
        declared = item.metadata.get(METADATA_KEY)
        if declared is None:
            continue
        kind, default = _kind(item.type), item.default
        required = default is MISSING
        negated = kind is bool and default is True
        flag = declared.flag or ("--no-" if negated else "--") + item.name.replace("_", "-")
        found[item.name] = ConfigOption(item.name, flag, kind, None if required else default, required,
                                        declared.help, declared.choices)
    return found

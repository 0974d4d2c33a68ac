"""How orchestrion's command-line help reads: flags without a type, arguments in capitals.

Typer 0.29's rich help prints a ``<bool>`` type after every flag (``--overwrite <bool>``,
``--help <bool>``), although a flag takes no value, and shows required arguments as
``{checkpoint}`` in the usage line and errors. Both read as if the user had to type them.
:func:`tidy_typer_help` makes flags show no type and arguments read the classic way
(``CHECKPOINT``, optional ones ``[CHECKPOINT]``), matching the names the command docstrings use.
It patches Typer's parameter classes once; ``tests/test_cli.py`` checks every command's help.
"""

from __future__ import annotations

from typer.core import TyperArgument, TyperOption

_TIDIED = "_orchestrion_tidied"


def tidy_typer_help() -> None:
    """Make every Typer help and usage line of this process show flags and arguments as above."""
    if getattr(TyperOption, _TIDIED, False):
        return
    option_type = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: object) -> str | None:
        return None if self.is_flag or self.count else option_type(self, ctx)

    def display_name_raw(self: TyperArgument) -> str:
        return self.metavar if self.metavar is not None else self.name.upper()

    def usage_display_name(self: TyperArgument) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")

    TyperOption.display_type_rich = display_type_rich
    TyperArgument.display_name_raw = property(display_name_raw)
    TyperArgument._usage_display_name = usage_display_name
    setattr(TyperOption, _TIDIED, True)

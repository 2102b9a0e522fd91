"""The CLI reference (``docs/cli.md``), written from the real argparse parsers.

Regenerate after changing a subcommand or flag::

    python -m hptransfer.cli.reference > docs/cli.md

``tests/test_docs.py`` fails when ``docs/cli.md`` misses a subcommand or flag, or lists one
that no longer exists.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

HEADER = """# CLI reference

Every subcommand and flag of `hptransfer`, generated from its argparse parsers by
`python -m hptransfer.cli.reference > docs/cli.md` (`tests/test_docs.py` checks that it is
current). Every command prints a one-line error and exits with code 2 on bad input; `-v`
before the subcommand makes any command verbose.
"""
TOP = "The options before any subcommand."


def commands(
    parser: argparse.ArgumentParser, prog: str = "hptransfer", description: str = TOP
) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """``(command line, what it does, parser)`` of ``parser`` and every subcommand below it."""
    yield prog, description, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield from commands(sub, f"{prog} {name}", sub.description or helps[name])


def arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The arguments a user types (no ``--help``, no subcommand choice)."""
    return [
        a
        for a in parser._actions
        if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
    ]


def argument_name(action: argparse.Action) -> str:
    """``--flag, -f METAVAR`` or the positional's name, as the table shows it."""
    if not action.option_strings:
        return str(action.metavar or action.dest)
    names = ", ".join(action.option_strings)
    if action.nargs == 0:
        return names
    return f"{names} {action.metavar or action.dest.upper()}"


def _help(action: argparse.Action) -> str:
    """The help text as one table cell, with the choices and the default where it omits them."""
    text = " ".join((action.help or "").split())
    text = text.replace("%(default)s", str(action.default)).replace("%%", "%")
    if action.choices:
        text += f" (one of: {', '.join(map(str, action.choices))})"
    if action.default not in (None, False, "", [], argparse.SUPPRESS) and "default" not in text:
        text += f" (default: {action.default})"
    return _escape(text.strip())


def _escape(text: str) -> str:
    """Markdown-safe: ``<name>`` would read as an HTML tag, ``|`` end the cell, ``*`` italicise."""
    for char, escaped in (("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("*", "\\*")):
        text = text.replace(char, escaped)
    return text


def section(line: str, description: str, parser: argparse.ArgumentParser) -> str:
    """The markdown of one command: its heading, what it does, its arguments."""
    parts = [f"## `{line}`", "", _escape(" ".join(description.split())), ""]
    rows = arguments(parser)
    if rows:
        parts += ["| argument | what it does |", "|---|---|"]
        parts += [f"| `{argument_name(a)}` | {_help(a)} |" for a in rows]
        parts.append("")
    return "\n".join(parts)


def markdown(parser: argparse.ArgumentParser) -> str:
    """The whole reference."""
    return "\n".join([HEADER, *(section(*c) for c in commands(parser))])


if __name__ == "__main__":
    from hptransfer.cli.main import build_parser

    print(markdown(build_parser()), end="")

"""`p2p-real`: edit real photos with Prompt-to-Prompt from the command line, a thin client of p2p_real.

Each subcommand is a module of p2p_real.commands (its arguments, then one call into the library); this
file builds the parser and turns errors into one line. Heavy libraries (torch, diffusers) are imported
inside the commands only, so that `p2p-real --help` answers at once. Every user error is one line on
stderr and a non-zero exit status; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from p2p_real.commands import COMMANDS
from p2p_real.commands.options import PROG, CliError
from p2p_real.files.versions import package_version

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
MAX_QUOTED_PATH = 160  # characters of a file name an error line quotes (the middle of a longer one is cut)
__all__ = ["COMMANDS", "CliError", "build_parser", "main"]


class UsageError(Exception):
    """Bad command-line arguments: printed as one line, exit status 2."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (raised, not printed with the usage)."""

    def error(self, message: str) -> NoReturn:
        """Raise the usage error instead of printing it and exiting."""
        raise UsageError(self.prog, message)


def build_parser() -> Parser:
    """The `p2p-real` parser with one subparser per module of p2p_real.commands."""
    parser = Parser(
        prog=PROG, description="Prompt-to-Prompt editing of real photos (null-text inversion).", allow_abbrev=False
    )  # an abbreviation never stands for another option (invert --out)
    parser.add_argument("--version", action="version", version=f"{PROG} {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        command = importlib.import_module(f"p2p_real.commands.{name}")
        p = sub.add_parser(
            command.NAME,
            help=command.HELP,
            description=command.HELP,
            epilog=command.EPILOG or None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            allow_abbrev=False,
        )
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


def one_line(exc: BaseException) -> str:
    """An exception as one line: its message with whitespace collapsed (the type for unexpected ones)."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        name = str(exc.filename)
        name = name if len(name) <= MAX_QUOTED_PATH else f"{name[: MAX_QUOTED_PATH // 2]}...{name[-40:]}"
        text = f"{name}: {exc.strerror.lower()}"
    else:
        text = str(exc) or type(exc).__name__
        if not isinstance(exc, (CliError, ValueError, OSError)):
            text = f"{type(exc).__name__}: {text}"
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run `p2p-real` with `argv` (default: sys.argv[1:]); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except UsageError as exc:
        print(f"{exc.prog}: error: {' '.join(str(exc).split())} (see {exc.prog} --help)", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (finished outputs are kept; run the same command again to resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if "--debug" in argv:  # as given: the arguments may not have parsed
            raise
        hint = "" if isinstance(exc, (CliError, ValueError, OSError)) else " (run with --debug for the traceback)"
        print(f"{PROG}: error: {one_line(exc)}{hint}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())

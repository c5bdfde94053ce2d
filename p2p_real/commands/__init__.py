"""The `p2p-real` subcommands, one module each: NAME, HELP, EPILOG, add_arguments(parser) and run(args).

A command module parses its arguments, imports the library inside `run` (so that `p2p-real --help`
loads no torch), calls it and prints. cli.py builds the parser from COMMANDS.
"""

COMMANDS = ("edit", "invert", "reconstruct", "attention", "generate", "batch", "evaluate", "env", "demo", "ui")

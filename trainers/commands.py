"""CLI commands of the trainers plugin (train, merge, demo)."""
from lorag_harness.hookspecs import hookimpl


@hookimpl
def register_commands(cli):
    pass

"""Errors shown to users as clean messages by the CLI."""


class LoragError(Exception):
    """A user-facing error: bad input, missing package, unknown plugin."""


class DataError(LoragError):
    """Bad input data; the message names the file and line."""

    def __init__(self, source: str, line: int | None, message: str):
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")
        self.source, self.line = source, line


class GraderError(LoragError):
    """A grader broke the contract: wrong output count or type, an invalid judgment."""

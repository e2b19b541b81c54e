"""The consoles every command prints to: results on stdout, progress and errors on stderr."""
import sys

from rich.console import Console

# piped output gets a wide table instead of Rich's 80-column default
console = Console(width=None if sys.stdout.isatty() else 170)
err = Console(stderr=True)

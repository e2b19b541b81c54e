"""The ``lorag`` command."""
from __future__ import annotations

import importlib
import logging
import os
import sys

import click
from rich.text import Text

from lorag_harness.cli.output import console, err  # noqa: F401  (console: tests and plug-ins print through it)
from lorag_harness.errors import LoragError
from lorag_harness.plugins import pm

# bitsandbytes' CPU backend asks for the `kernels` package (which would fetch from the hub) on every
# import on AVX512-BF16 CPUs; NF4 works without it, so the warning only misleads
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(lambda record: "kernels-community" not in record.getMessage())



# core commands: "module:attr", imported when run (or when their own --help is asked)
CORE_COMMANDS = {
    "bench": ("lorag_harness.cli.bench:bench", "Run graders × tasks on a dataset and print a comparison table."),
    "check": ("lorag_harness.cli.bench:check", "Check grader plug-ins against the grader contract (a plug-in author's checker)."),
    "cache": ("lorag_harness.cli.cache:cache", "The judgment cache."),
    "report": ("lorag_harness.cli.report:report",
               "Re-render RESULTS.json (lorag bench --out x.json) as HTML, markdown or tables; or --compare A B."),
    "plugins": ("lorag_harness.cli.plugins:plugins", "List graders, tasks and datasets, and the plugin that registered each."),
    "grade": ("lorag_harness.batch.command:grade", "Grade every pair of a file, streaming; a killed run resumes where it stopped."),
    "serve": ("lorag_harness.serving.command:serve_command",
              "Serve a grader over an OpenAI-compatible API: /v1/models, /v1/chat/completions, /v1/rerank."),
}


class Group(click.Group):
    """Every failure as one line: user errors (LoragError, files, cache, decoding, bad options) exit 2,
    anything else exits 1 as "internal"; ``--debug`` (or LORAG_DEBUG=1) adds the traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt):
            raise
        except click.exceptions.ClickException as e:  # a bad option or argument: one line, not click's usage block
            sub = getattr(e, "ctx", None)
            path = " ".join(sub.command_path.split()[1:]) if sub is not None else ""  # "train cls", not "cls"
            hint = f" (lorag {path} --help)" if sub is not None and sub is not ctx else ""
            err.print(Text("error: ", style="bold red") + Text(e.format_message() + hint), soft_wrap=True)
            sys.exit(e.exit_code)
        except Exception as e:  # noqa: BLE001 - the one place every failure is reported
            from lorag_harness.cli.errors import describe

            if ctx.params.get("debug"):
                import traceback

                traceback.print_exc()
            message, code = describe(e)
            err.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)
            _exit(code)

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(CORE_COMMANDS))

    def get_command(self, ctx, name):
        if name not in self.commands and name in CORE_COMMANDS:
            module, _, attr = CORE_COMMANDS[name][0].partition(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx, formatter):
        """The command list without importing the core commands' modules."""
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.commands.get(name)
            if cmd is not None and cmd.hidden:
                continue
            rows.append((name, cmd.get_short_help_str(formatter.width - 6 - len(name)) if cmd is not None
                         else CORE_COMMANDS[name][1]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=Group)
@click.version_option(package_name="lorag-harness")
@click.option("--debug", is_flag=True, envvar="LORAG_DEBUG", help="Show tracebacks [env LORAG_DEBUG=1]")
def cli(debug):
    """Evaluate RAG relevance graders: LM, LoRA adapters, embeddings."""
    from lorag_harness.progress import quiet_libraries

    quiet_libraries(debug)  # library progress bars, logging and FutureWarnings only with --debug


pm.hook.register_commands(cli=cli)


def _exit(code: int) -> None:
    """Exit with ``code``. A ``ray.init`` given up on (--ray-timeout) leaves Ray's native client in a thread
    that can crash the interpreter's teardown (SIGSEGV instead of the exit code): then leave at once."""
    import threading

    if any(t.name == "lorag-ray-init" and t.is_alive() for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main():  # console script
    cli()

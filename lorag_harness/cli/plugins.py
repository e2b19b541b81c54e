"""``lorag plugins``: what is registered and where it comes from (imports no plug-in module)."""
from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from lorag_harness.api import registry


@click.command()
def plugins():
    """List graders, tasks and datasets, and the plugin that registered each."""
    from lorag_harness.cli.output import console
    from lorag_harness.plugins import plugin_origins, pm

    origins = plugin_origins(pm)
    for kind, entries in (("graders", registry.graders()), ("tasks", registry.tasks()), ("datasets", registry.datasets())):
        table = Table(title=kind, title_justify="left", header_style="bold")
        for col in ("name", "description", "plugin", "from"):
            table.add_column(col)
        for e in entries.values():
            table.add_row(*(Text(x) for x in (e.name, e.description, e.plugin, origins.get(e.plugin, "built-in"))))
        console.print(table)

"""Plugin hooks. Each hook receives a ``register`` callback (the style of simonw/llm)."""
from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("lorag_harness")
hookimpl = HookimplMarker("lorag_harness")


@hookspec
def register_graders(register):
    """Register graders: ``register(name, factory, description="")``.

    ``factory(arg, context)`` returns a grader; ``arg`` is the text after the colon
    in a grader spec such as ``s1:adapters/s1`` (or None), ``context`` a
    :class:`lorag_harness.api.registry.GraderContext`.
    """


@hookspec
def register_tasks(register):
    """Register tasks: ``register(name, factory, description="")``; ``factory(**options)`` returns a task."""


@hookspec
def register_datasets(register):
    """Register datasets: ``register(name, loader, description="")``.

    ``loader(arg, options)`` returns a :class:`lorag_harness.api.types.Dataset`;
    ``arg`` is the text after the colon in ``jsonl:pairs.jsonl`` (or None).
    """


@hookspec
def register_grader_options(register):
    """Add command-line options for your graders: ``register(click.option("--my-option", ...))``.

    Every command that builds graders (bench, check, grade, serve) takes them; their values reach your
    grader factory as ``context.options["my_option"]``."""


@hookspec
def register_commands(cli):
    """Add click commands to the ``lorag`` command group."""

"""Command-line options of the ``openai:MODEL`` judge (the API key only from the environment)."""
import click

from lorag_harness.cli.options import Finite

JUDGE_OPTIONS = [
    click.option("--judge-base-url", default=None, help="openai: judges: base URL [env OPENAI_BASE_URL, else api.openai.com]"),
    click.option("--judge-api-key-env", default="OPENAI_API_KEY", show_default=True,
                 help="openai: judges: environment variable holding the API key (never passed on the command line)"),
    click.option("--judge-style", type=click.Choice(["json", "umbrela"]), default="json", show_default=True,
                 help="openai: judges: our JSON schema, or an UMBRELA 0-3 grade (openai:MODEL@umbrela sets it per grader)"),
    click.option("--judge-threshold", type=Finite(), default=None,
                 help="openai: judges: umbrela grade counted relevant [2]; json: P(true) cut [the judge's own answer]"),
    click.option("--judge-concurrency", type=click.IntRange(1, 256), default=4, show_default=True),
    click.option("--judge-timeout", type=Finite(min=0.1), default=60.0, show_default=True, help="Seconds per request"),
    click.option("--judge-retries", type=click.IntRange(0, 20), default=3, show_default=True,
                 help="Retries on 429/5xx/timeouts/connection errors (exponential backoff, Retry-After honoured)"),
    click.option("--judge-max-tokens", type=click.IntRange(1, 8192), default=None, help="openai: judges: max_tokens per reply"),
]

"""``openai:MODEL``: an LLM judge behind any OpenAI-compatible chat endpoint (vLLM, Ollama,
llama.cpp's server, ``transformers serve``, ``lorag serve``, hosted APIs).

Styles: ``json`` asks for our output schema (``{"relevant": ..., "reason": {...}}``) with our
grading prompt; ``umbrela`` asks for a 0-3 grade (UMBRELA, Upadhyay et al. 2024) on a
``##final score: N`` line, and a pair is relevant when the grade reaches the threshold.
With token logprobs from the server, the score is P(true) (json) or the expected grade / 3
over the grade tokens (umbrela); without them it comes from the parsed text.

Requests run concurrently (a semaphore), the ``openai`` client retries 408/409/429/5xx,
timeouts and connection errors with exponential backoff (honouring ``Retry-After``). A request
that still fails becomes an undecided judgment (a parse failure in reports) that is not cached,
so a rerun retries it. The API key is read from the environment and kept out of the
fingerprint, the cache, reports and logs."""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import re
import threading
from urllib.parse import urlsplit

from lorag_harness.backends import prompts
from lorag_harness.api.grader import Grader
from lorag_harness.errors import LoragError
from lorag_harness.api.fingerprints import fingerprint
from lorag_harness.api.types import Judgment, Pair
from lorag_harness.backends.output_parsing import first_json_object, valid_reason

log = logging.getLogger("lorag_harness.openai_judge")

STYLES = ("json", "umbrela")
ERROR_PREFIX = "error: "
DEFAULT_BASE_URL = "https://api.openai.com/v1"

UMBRELA_PROMPT = """Given a query and a passage, you must provide a score on an integer scale of 0 to 3 with the following meanings:
0 = represent that the passage has nothing to do with the query,
1 = represents that the passage seems related to the query but does not answer it,
2 = represents that the passage has some answer for the query, but the answer may be a bit unclear, or hidden amongst extraneous information and
3 = represents that the passage is dedicated to the query and contains the exact answer.

Important Instruction: Assign category 1 if the passage is somewhat related to the topic but not completely, category 2 if passage presents something very important related to the entire topic but also has some extra information and category 3 if the passage only and entirely refers to the topic. If none of the above satisfies give it category 0.

Query: {query}
Passage: {passage}

Split this problem into steps:
Consider the underlying intent of the search.
Measure how well the content matches a likely intent of the query (M).
Measure how trustworthy the passage is (T).
Consider the aspects above and the relative importance of each, and decide on a final score (O). Final score must be an integer value only.
Do not provide any code in result. Provide each score in the format of: ##final score: score without providing any reasoning."""

FINAL_SCORE = re.compile(r"final\s*score\s*(?:\(O\))?\s*[:=]?\s*\**\s*([0-3])", re.IGNORECASE)
RELEVANT_VALUE = re.compile(r'"relevant"\s*:\s*(true|false)', re.IGNORECASE)


def style_messages(style: str, query: str, document: str) -> list[dict]:
    if style == "json":
        return prompts.messages(query, document)
    return [{"role": "user", "content": UMBRELA_PROMPT.format(query=query, passage=document)}]


def prompt_hash(style: str) -> str:
    return hashlib.sha256(json.dumps(style_messages(style, "{q}", "{d}")).encode()).hexdigest()[:16]


def endpoint_id(base_url: str) -> str:
    """scheme://host[:port]/path of a base URL: no user info, query or fragment (they may carry secrets)."""
    u = urlsplit(base_url)
    host = u.hostname or ""
    if u.port:
        host = f"{host}:{u.port}"
    return f"{u.scheme}://{host}{u.path.rstrip('/')}"


class OpenAIJudge(Grader):
    """An LLM judge over an OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", style: str = "json", threshold: float | None = None,
                 concurrency: int = 4, timeout: float = 60.0, retries: int = 3, max_tokens: int | None = None,
                 logprobs: bool = True, name: str | None = None):
        if not model:
            raise LoragError("grader openai needs a model name: --graders openai:MODEL")
        if style not in STYLES:
            raise LoragError(f"--judge-style must be one of {', '.join(STYLES)}, not {style!r}")
        if threshold is None and style == "umbrela":
            threshold = 2
        if style == "umbrela" and not 0 <= threshold <= 3:
            raise LoragError(f"--judge-threshold for the umbrela style is a grade in 0..3, not {threshold}")
        if style == "json" and threshold is not None and not 0 <= threshold <= 1:
            raise LoragError(f"--judge-threshold for the json style is a P(true) in 0..1, not {threshold}")
        if concurrency < 1 or timeout <= 0 or retries < 0 or (max_tokens is not None and max_tokens < 1):
            raise LoragError("--judge-concurrency and --judge-max-tokens must be >= 1, --judge-timeout > 0 "
                             "and --judge-retries >= 0")
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LoragError(f"--judge-base-url must be an http(s) URL, not {endpoint_id(base_url)!r}")
        if parts.username or parts.password or parts.query or parts.fragment:
            # they would end up in reports and logs: credentials go in the environment
            raise LoragError(f"--judge-base-url {endpoint_id(base_url)}: no user info, query string or fragment "
                             "(put the key in the environment: --judge-api-key-env)")
        self.model, self.base_url, self.style = model, base_url, style
        # json: None follows the judge's own true/false; a number decides on P(true) when logprobs come back
        self.threshold = None if threshold is None else float(threshold)
        self.concurrency, self.timeout, self.retries, self.max_tokens = concurrency, float(timeout), retries, max_tokens
        self.logprobs = logprobs
        # the key lives only here and in the client's Authorization header (local servers take any)
        self._api_key = api_key or os.environ.get(api_key_env) or "EMPTY"
        self._init_args = ((), {})  # Grader.__new__ recorded the arguments, the key among them
        self.name = name or f"openai:{model}@{style}"

    def __repr__(self) -> str:  # never the key
        return f"OpenAIJudge({self.model!r}, base_url={endpoint_id(self.base_url)!r}, style={self.style!r})"

    def fingerprint(self) -> str:
        return fingerprint(kind="openai", endpoint=endpoint_id(self.base_url), model=self.model, style=self.style,
                           threshold=self.threshold, prompt=prompt_hash(self.style), max_tokens=self.max_tokens,
                           logprobs=self.logprobs, temperature=0)

    def cacheable(self, judgment: Judgment) -> bool:
        """A failed request is not a judgment: keep it out of the cache so a rerun retries it."""
        return not (judgment.relevant is None and judgment.raw_text.startswith(ERROR_PREFIX))

    # grading ------------------------------------------------------------------------------

    def grade(self, pairs, *, reasons: bool = False, advance=None) -> list[Judgment]:
        pairs = list(pairs)
        if not pairs:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._grade_all(pairs, reasons, advance))
        # called from inside an event loop (a server, a notebook): run on a thread of our own
        box: dict = {}

        def run():
            try:
                box["out"] = asyncio.run(self._grade_all(pairs, reasons, advance))
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                box["err"] = e

        t = threading.Thread(target=run, name="openai-judge")
        t.start()
        t.join()
        if "err" in box:
            raise box["err"]
        return box["out"]

    async def _grade_all(self, pairs: list[Pair], reasons: bool, advance) -> list[Judgment]:
        from openai import AsyncOpenAI

        limit = asyncio.Semaphore(self.concurrency)
        async with AsyncOpenAI(base_url=self.base_url, api_key=self._api_key, timeout=self.timeout,
                               max_retries=self.retries) as client:
            async def one(pair: Pair) -> Judgment:
                async with limit:
                    j = await self._judge(client, pair, reasons)
                if advance:
                    advance(1)
                return j

            tasks = [asyncio.ensure_future(one(p)) for p in pairs]
            try:
                out = await asyncio.gather(*tasks)
            except BaseException:
                for t in tasks:
                    t.cancel()
                raise
        failed = [j for j in out if not self.cacheable(j)]
        if failed:
            log.warning("%s: %d of %d requests failed (not cached; a rerun retries them), first: %s",
                        self.name, len(failed), len(out), failed[0].raw_text[len(ERROR_PREFIX):])
        return list(out)

    def _max_tokens(self, reasons: bool) -> int:
        if self.max_tokens:
            return self.max_tokens
        if self.style == "umbrela":
            return 48
        return 160 if reasons else 24

    async def _judge(self, client, pair: Pair, reasons: bool) -> Judgment:
        import openai

        kwargs = dict(model=self.model, messages=style_messages(self.style, pair.query, pair.document),
                      temperature=0, max_tokens=self._max_tokens(reasons))
        if self.logprobs:
            kwargs.update(logprobs=True, top_logprobs=5)
        try:
            resp = await client.chat.completions.create(**kwargs)
            choice = resp.choices[0]
            text = choice.message.content or ""
            tokens = list(getattr(getattr(choice, "logprobs", None), "content", None) or [])
        except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as e:
            # every other pair would fail the same way: stop the run with what to fix
            raise LoragError(f"openai judge at {endpoint_id(self.base_url)}: {_error_text(e)} "
                             f"(check the model name and the key in the environment)") from None
        except Exception as e:  # noqa: BLE001 - one bad response must not stop the run
            return Judgment(relevant=None, raw_text=ERROR_PREFIX + _error_text(e), parse_ok=False)
        if self.style == "json":
            return self._json_judgment(text, tokens, reasons)
        return self._umbrela_judgment(text, tokens)

    def _json_judgment(self, text: str, tokens, reasons: bool) -> Judgment:
        obj, _ = first_json_object(text)
        value = obj.get("relevant") if obj else None
        if not isinstance(value, bool):
            m = RELEVANT_VALUE.search(text)
            value = m.group(1).lower() == "true" if m else None
        p = true_probability(tokens)
        relevant = value
        if p is not None and (relevant is None or self.threshold is not None):
            relevant = p >= (0.5 if self.threshold is None else self.threshold)
        reason = obj.get("reason") if obj else None
        reason = reason if valid_reason(reason) else None
        score = p if p is not None else (None if relevant is None else float(relevant))
        parse_ok = value is not None and (not reasons or reason is not None)
        return Judgment(relevant=relevant, score=score, reason=reason if reasons else None, raw_text=text,
                        parse_ok=parse_ok if relevant is not None else False)

    def _umbrela_judgment(self, text: str, tokens) -> Judgment:
        found = FINAL_SCORE.findall(text)
        grade = int(found[-1]) if found else None
        expected = expected_grade(tokens)
        if grade is None and expected is not None:
            grade = round(expected)
        if grade is None:
            return Judgment(relevant=None, raw_text=text, parse_ok=False)
        score = expected / 3 if expected is not None else grade / 3
        return Judgment(relevant=grade >= self.threshold, score=score, raw_text=text, parse_ok=bool(found))


def _error_text(e: Exception) -> str:
    """A short description of a failed request (type, status, message) without headers."""
    status = getattr(e, "status_code", None)
    msg = str(getattr(e, "message", None) or e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}" + (f" {status}" if status else "") + (f": {msg[:200]}" if msg else "")


def _alternatives(tok) -> dict[str, float]:
    """token text -> probability among the token's top alternatives (the chosen one included)."""
    out: dict[str, float] = {}
    for alt in list(getattr(tok, "top_logprobs", None) or []) + [tok]:
        t, lp = getattr(alt, "token", None), getattr(alt, "logprob", None)
        if isinstance(t, str) and isinstance(lp, (int, float)) and math.isfinite(lp):
            out.setdefault(t, math.exp(lp))
    return out


def true_probability(tokens) -> float | None:
    """P(true) / (P(true) + P(false)) at the first token whose text is true or false."""
    for tok in tokens:
        if str(getattr(tok, "token", "")).strip().lower() not in ("true", "false"):
            continue
        probs = _alternatives(tok)
        pt = sum(p for t, p in probs.items() if t.strip().lower() == "true")
        pf = sum(p for t, p in probs.items() if t.strip().lower() == "false")
        return pt / (pt + pf) if pt + pf > 0 else None
    return None


def expected_grade(tokens) -> float | None:
    """Expected grade over the 0-3 alternatives of the last grade token after "score"."""
    seen_score, grade_tok = False, None
    for tok in tokens:
        text = str(getattr(tok, "token", ""))
        if "score" in text.lower():
            seen_score = True
        elif seen_score and text.strip() in ("0", "1", "2", "3"):
            grade_tok = tok
    if grade_tok is None:
        return None
    probs = {int(t.strip()): p for t, p in _alternatives(grade_tok).items() if t.strip() in ("0", "1", "2", "3")}
    total = sum(probs.values())
    return sum(g * p for g, p in probs.items()) / total if total > 0 else None


def parse_spec(arg: str | None) -> tuple[str, str | None]:
    """``MODEL`` or ``MODEL@STYLE`` -> (model, style or None)."""
    if not arg:
        raise LoragError("grader openai needs a model name: --graders openai:MODEL (or openai:MODEL@umbrela)")
    model, sep, style = arg.rpartition("@")
    if sep and style in STYLES and model:
        return model, style
    return arg, None


def make_openai(arg, context):
    """LLM judge over an OpenAI-compatible API: openai:MODEL or openai:MODEL@umbrela (--judge-* options)."""
    model, style = parse_spec(arg)
    o = context.options or {}
    judge = OpenAIJudge(
        model, base_url=o.get("judge_base_url"), api_key_env=o.get("judge_api_key_env") or "OPENAI_API_KEY",
        style=style or o.get("judge_style") or "json", threshold=o.get("judge_threshold"),
        concurrency=o.get("judge_concurrency") or 4, timeout=o.get("judge_timeout") or 60.0,
        retries=o.get("judge_retries") if o.get("judge_retries") is not None else 3,
        max_tokens=o.get("judge_max_tokens"), name=f"openai:{arg}",
    )
    return judge

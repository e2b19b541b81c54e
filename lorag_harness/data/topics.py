"""Readable topic names and the query phrasings built from them."""
from __future__ import annotations

import re

READABLE = {
    # Reuters R8 (R52 adds more; unknown labels fall back to the label itself)
    "earn": "corporate earnings",
    "acq": "mergers and acquisitions",
    "crude": "crude oil",
    "trade": "international trade",
    "money-fx": "foreign exchange",
    "interest": "interest rates",
    "ship": "shipping",
    "grain": "grain",
    "coffee": "coffee",
    "sugar": "sugar",
    "gold": "gold",
    "gnp": "economic growth",
    "cpi": "consumer prices",
    "jobs": "employment",
    "money-supply": "money supply",
    "reserves": "currency reserves",
    "veg-oil": "vegetable oil",
    "nat-gas": "natural gas",
    "ipi": "industrial production",
    "bop": "balance of payments",
}

PHRASINGS = (
    "news about {t}",
    "{t}",
    "articles on {t}",
    "latest {t} developments",
    "reports covering {t}",
)


def readable(label: str) -> str:
    if label in READABLE:
        return READABLE[label]
    return re.sub(r"[._\-]+", " ", label).strip()


def normalise(text: str | None) -> str:
    return re.sub(r"[^a-z0-9]+", " ", str(text or "").lower()).strip()


def topic_matches(predicted: str | None, gold: str, topics: dict[str, str]) -> bool:
    """True when a predicted topic names ``gold``, given as a label or a readable name;
    either form of the topic counts."""
    p, g = normalise(predicted), normalise(gold)
    if not p:
        return False
    names = {g}
    for label, name in topics.items():
        if g in (normalise(label), normalise(name)):
            names |= {normalise(label), normalise(name)}
    return p in names

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


def topic_matches(predicted: str | None, label: str, topics: dict[str, str]) -> bool:
    """True when a predicted topic names ``label`` (by label or readable name)."""
    p = normalise(predicted)
    return bool(p) and p in {normalise(label), normalise(topics.get(label, readable(label)))}


def nearest_label(predicted: str | None, topics: dict[str, str]) -> str | None:
    for label in topics:
        if topic_matches(predicted, label, topics):
            return label
    return None

"""A tiny BEIR-layout collection for the ranking tests (12 documents, 4 queries, graded qrels)."""
import json

DOCS = {
    "d1": ("Apple harvest", "The apple harvest in the orchard was large this year; apples were picked by hand."),
    "d2": ("Orchards", "Orchard owners sell apples and pears at the market."),
    "d3": ("Apple pie", "A recipe for apple pie with cinnamon."),
    "d4": ("Whales", "Blue whales swim in the deep ocean and eat krill."),
    "d5": ("Ocean life", "The ocean holds whales, dolphins and many fish."),
    "d6": ("Ships", "Cargo ships cross the ocean between ports."),
    "d7": ("Trains", "High speed trains connect the cities of the country."),
    "d8": ("Railways", "Railway tracks and trains need regular maintenance."),
    "d9": ("Bicycles", "Cycling to work keeps people healthy."),
    "d10": ("Stars", "Astronomers watch distant stars with telescopes."),
    "d11": ("Planets", "The planets orbit the sun; astronomers study their moons."),
    "d12": ("Weather", "Rain and wind are expected along the coast tomorrow."),
}
QUERIES = {"q1": "apple harvest in the orchard", "q2": "whales in the ocean", "q3": "trains and railways",
           "q4": "astronomers and stars", "q5": "a query nobody judged"}
QRELS = [("q1", "d1", 2), ("q1", "d2", 1), ("q2", "d4", 2), ("q2", "d5", 1), ("q3", "d8", 1), ("q3", "d7", 1),
         ("q4", "d10", 1), ("q4", "d12", 0)]


def write_beir(root, qrels=QRELS, splits=("test",), docs=DOCS, queries=QUERIES):
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n"
                                               for i, (t, x) in docs.items()), encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in queries.items()),
                                        encoding="utf-8")
    (root / "qrels").mkdir(exist_ok=True)
    for split in splits:
        rows = qrels if isinstance(qrels, (list, tuple)) else qrels[split]
        (root / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in rows),
                                                      encoding="utf-8")
    return root

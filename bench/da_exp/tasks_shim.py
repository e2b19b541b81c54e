def judged(ds):
    return [q for q in ds.queries if any(g > 0 for g in ds.qrels.get(q.query_id, {}).values())]

"""bench/results.json has one shape: every section in the envelope (command, commit, date, machine)."""
import json
from pathlib import Path

from bench import results_file

ROOT = Path(__file__).resolve().parents[1]


def test_results_file_follows_the_schema():
    data = json.loads((ROOT / "bench" / "results.json").read_text())
    assert data and results_file.problems(data) == []


def test_update_writes_the_envelope_and_keeps_other_sections(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"other": {"command": "x", "commit": "abc", "date": "2026-01-01T00:00:00Z",
                                          "machine": {"cpu": "c", "cpu_capability": "AVX2", "cores": 2,
                                                      "precision": "fp32"}, "results": {"a": 1}}}))
    results_file.update("mine", {"pairs_per_s": 3.5}, precision="bf16", command="python -m bench.mine", path=path)
    results_file.update("mine", change=lambda r: r.update(rows=2), precision="bf16", command="python -m bench.mine",
                        path=path)
    data = json.loads(path.read_text())
    assert data["other"]["results"] == {"a": 1}
    assert data["mine"]["results"] == {"pairs_per_s": 3.5, "rows": 2}
    assert data["mine"]["machine"]["precision"] == "bf16" and data["mine"]["machine"]["cores"]
    assert results_file.problems(data) == []
    data["mine"].pop("commit")
    assert results_file.problems(data) == [f"mine: keys {sorted(data['mine'])}, want {list(results_file.ENVELOPE)}"]

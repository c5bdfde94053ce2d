"""benchmarks/memory.py runs anywhere: on the CPU with the tiny model it times invert + edit and writes JSON."""

import json

from benchmarks import memory


def test_the_memory_benchmark_runs_on_the_cpu_and_writes_json_naming_the_device(tmp_path):
    out = tmp_path / "memory.json"
    entry = memory.main(
        [
            "--model",
            "tiny",
            "--device",
            "cpu",
            "--sizes",
            "64",
            "--steps",
            "1",
            "--modes",
            "none",
            "model",
            "--method",
            "ddim",
            "--json",
            str(out),
        ]
    )
    data = json.loads(out.read_text())
    assert data["device"] == entry["device"] and entry["device"].startswith("cpu")
    none, model = data["runs"][0]["runs"]
    assert none["mode"] == "none" and none["invert_s"] > 0 and none["edit_s"] > 0
    assert none["peak_allocated_gib"] is None  # GPU memory only
    assert model == {"mode": "model", "size": 64, "skipped": "offload needs a GPU"}

"""benchmarks/gpu.py (docs/gpu_benchmark.md): the smoke run of every row on the tiny models, the time budget
(a row that would not fit is skipped with the reason, nothing hangs), --rows, the merged results file and
the README table drawn from it."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
import torch

from benchmarks import gpu

FAST = dataclasses.replace(gpu.SMOKE, name="test", budget_s=5.0, grace_s=0.2, threads=None, judges_goals=True)
README = Path(__file__).parent.parent / "README.md"


def _row(name: str, run, budget: float = 1.0, floor: float = 0.0, goal: gpu.Goal | None = None) -> gpu.Row:
    return gpu.Row(name, f"test row {name}", "s", run, goal, (budget, budget), (floor, floor))


def _value(value: float):
    return lambda ctx, clock: gpu.Measured(value)


def test_the_smoke_run_measures_every_row_a_cpu_can_and_writes_the_json_and_the_table(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    start = time.perf_counter()
    results = gpu.main(["--smoke", "--json", str(out)])
    assert time.perf_counter() - start < 90  # about 25 s on a busy 2-core machine
    data = json.loads(out.read_text())
    assert data == results
    assert data["device"].startswith("cpu") and data["profile"] == "smoke"
    assert data["torch"] and data["diffusers"] and data["date"]
    rows = {r["name"]: r for r in data["rows"]}
    assert list(rows) == [r.name for r in gpu.ROWS]
    skipped = {name: r["reason"] for name, r in rows.items() if r["status"] == "skipped"}
    offload = {name for name in rows if name.startswith(("memory-model", "memory-sequential"))}
    assert set(skipped) == offload | {"compile-vs-graphs"}
    assert all(skipped[name] == "offload needs a GPU" for name in offload)
    assert skipped["compile-vs-graphs"].startswith("needs at least 90 s")
    for name, r in rows.items():
        if name in skipped:
            continue
        assert r["status"] == "measured", (name, r)  # goals are a GPU's: never judged on a smoke run
        assert r["device"] == data["device"] and r["date"] == data["date"][:10]
        if r["unit"] == "GiB":
            assert r["value"] is None and r["details"]["invert_s"] > 0  # no GPU memory on a CPU; it ran
        else:
            assert r["value"] > 0, name
    assert rows["null-text-reference"]["details"]["reference_seconds"] > 0
    assert rows["sdxl-overhead"]["details"]["model"] == "tiny-sdxl"
    printed = capsys.readouterr().out
    assert gpu.table(data) in printed
    assert "| `edit-overhead` |" in printed


def test_the_compile_row_runs_compiled_and_graphed_inversions_in_turns(monkeypatch):
    compiled = []  # torch.compile stands aside (inductor takes minutes on a CPU): the row's own code runs
    monkeypatch.setattr(torch, "compile", lambda fn, **options: compiled.append(options) or fn)
    row = next(r for r in gpu.ROWS if r.name == "compile-vs-graphs")
    one_step = gpu.Context(dataclasses.replace(gpu.SMOKE, steps=1))
    record = gpu.run_row(dataclasses.replace(row, floor_s=(0, 0)), one_step, left_s=60)
    assert record["status"] == "measured" and record["value"] > 0
    assert compiled == [{"dynamic": False}] * 2  # the two compiled inversions
    details = record["details"]
    assert details["compiled_first_seconds"] > 0 and details["graphs_seconds"] > 0 and not details["cuda_graphs"]
    assert record["value"] == pytest.approx(details["compiled_seconds"] / details["graphs_seconds"])


def test_a_smoke_run_never_writes_the_committed_results():
    before = gpu.RESULTS.read_bytes()
    with pytest.raises(SystemExit):
        gpu.main(["--smoke", "--json", str(gpu.RESULTS)])
    assert gpu.RESULTS.read_bytes() == before


def test_rows_picks_rows_and_groups_in_the_tables_order():
    assert [r.name for r in gpu.select_rows("null-text-reference,edit-overhead")] == [
        "edit-overhead",
        "null-text-reference",
    ]
    memory = [r.name for r in gpu.select_rows("memory")]
    assert memory == [r.name for r in gpu.ROWS if r.name.startswith("memory-")] and len(memory) == 6
    assert {r.name for r in gpu.select_rows("sdxl")} == {
        "sdxl-overhead",
        "sdxl-invert-edit-direct",
        "sdxl-invert-edit-null-text",
    }
    assert len(gpu.select_rows(None)) == len(gpu.ROWS)


def test_an_unknown_row_is_an_error_naming_it_and_the_known_rows(capsys):
    with pytest.raises(gpu.UnknownRow, match=r"'memory-512'.*known rows: edit-overhead"):
        gpu.select_rows("edit-overhead,memory-512")
    with pytest.raises(ValueError, match="names no row"):
        gpu.select_rows(" , ")
    with pytest.raises(SystemExit) as exc:
        gpu.main(["--smoke", "--rows", "nope"])
    assert exc.value.code == 2
    assert "'nope' is no row or group" in capsys.readouterr().err


def test_a_row_projected_past_its_budget_stops_after_a_few_steps_and_is_reported_skipped():
    def slow_steps(ctx, clock):  # 100 steps of 50 ms: 5 s, against a budget of 1 s
        for i in range(100):
            time.sleep(0.05)
            clock.step("loop", i, 100)
        return gpu.Measured(1.0)

    record = gpu.run_row(_row("slow", slow_steps), gpu.Context(FAST), left_s=10.0)
    assert record["seconds"] < 0.8  # stopped on the projection, not at the budget's end
    assert record["status"] == "skipped" and record["value"] is None
    assert record["reason"].startswith("would take about") and "over its 1 s budget" in record["reason"]


def test_a_row_over_its_budget_between_runs_is_skipped():
    def runs(ctx, clock):  # the overhead rows' way: whole runs checked before and after
        counted = clock.counted({"a": lambda: time.sleep(0.4)}, planned=50)
        for _ in range(50):
            counted["a"]()
        return gpu.Measured(1.0)

    record = gpu.run_row(_row("runs", runs), gpu.Context(FAST), left_s=10.0)
    assert record["seconds"] < 1.0  # after the second run, not at the third's start
    assert record["status"] == "skipped" and "after run 2 of 50" in record["reason"]


def test_a_row_that_reports_no_steps_is_stopped_by_the_timer_and_nothing_hangs():
    record = gpu.run_row(_row("hang", lambda ctx, clock: time.sleep(30)), gpu.Context(FAST), left_s=0.3)
    assert record["seconds"] < 2  # allowance 0.3 s + grace 0.2 s
    assert record["status"] == "skipped" and record["reason"].startswith("stopped by the timer")


def test_a_row_needing_more_than_is_left_is_not_started():
    def must_not_run(ctx, clock):
        raise AssertionError("started")

    record = gpu.run_row(_row("big", must_not_run, budget=100, floor=60), gpu.Context(FAST), left_s=41)
    assert record["status"] == "skipped"
    assert record["reason"] == "needs at least 60 s; what is left of the overall budget is 41 s"


def test_the_overall_budget_skips_the_rows_after_it_is_spent_and_a_failing_row_does_not_stop_the_rest():
    def fails(ctx, clock):
        raise RuntimeError("out of luck")

    rows = [
        _row("fails", fails),
        _row("uses-it", lambda ctx, clock: time.sleep(30), budget=10),
        _row("late", _value(1.0)),
    ]
    records = gpu.run_rows(rows, gpu.Context(FAST), budget_s=2.0)
    assert [r["status"] for r in records] == ["failed", "skipped", "skipped"]
    assert records[0]["reason"] == "RuntimeError: out of luck"
    assert records[1]["reason"].startswith("stopped by the timer")  # its allowance: the rest of the 2 s
    assert records[2]["reason"].startswith("needs at least 0 s; what is left of the overall budget is")


def test_goals_are_met_or_not_met_on_a_gpu_run():
    ctx = gpu.Context(FAST)
    assert gpu.run_row(_row("fast", _value(1.0), goal=gpu.Goal("<=", 2.0)), ctx, 5)["status"] == "met"
    assert gpu.run_row(_row("slow", _value(3.0), goal=gpu.Goal("<=", 2.0)), ctx, 5)["status"] == "not met"
    assert gpu.run_row(_row("speed", _value(2.5), goal=gpu.Goal(">=", 2.0)), ctx, 5)["status"] == "met"
    assert gpu.run_row(_row("none", _value(9.0)), ctx, 5)["status"] == "measured"


def test_the_results_file_keeps_earlier_figures_of_rows_not_run_or_skipped():
    rows = (_row("a", _value(1)), _row("b", _value(1)), _row("c", _value(1)))
    earlier = {
        "rows": [
            {**gpu._record(rows[0], "measured", 1.5), "device": "H100", "date": "2026-11-01"},
            {**gpu._record(rows[1], "measured", 2.5), "device": "H100", "date": "2026-11-01"},
            gpu._record(rows[2], "unmeasured"),
        ]
    }
    now = {
        "device": "H200",
        "rows": [
            {**gpu._record(rows[1], "skipped", reason="would take about 9 s"), "device": "H200", "date": "2026-12-05"},
            {**gpu._record(rows[2], "measured", 0.5), "device": "H200", "date": "2026-12-05"},
        ],
    }
    merged = {r["name"]: r for r in gpu.merge(earlier, now, rows)["rows"]}
    assert merged["a"]["value"] == 1.5 and merged["a"]["device"] == "H100"  # not run this time
    assert merged["b"]["value"] == 2.5 and merged["b"]["last_attempt"]["status"] == "skipped"
    assert merged["c"]["value"] == 0.5 and merged["c"]["device"] == "H200"
    assert gpu.merge(None, {"rows": []}, rows)["rows"][0]["status"] == "unmeasured"


def test_the_committed_results_name_every_row_and_the_readme_shows_their_table(capsys):
    data = json.loads(gpu.RESULTS.read_text())
    assert gpu.main(["--table"]) == data
    assert capsys.readouterr().out.strip() == gpu.table(data)
    assert [r["name"] for r in data["rows"]] == [r.name for r in gpu.ROWS]
    for r in data["rows"]:
        assert r["status"] in ("met", "not met", "measured", "skipped", "failed", "unmeasured")
        if r["status"] == "unmeasured":
            assert gpu.figure(r) == gpu.NOT_MEASURED
        else:
            assert r["device"] and r["date"]  # each figure says where and when
    assert gpu.table(data) in README.read_text()

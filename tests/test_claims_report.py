"""docs/paper_claims.md's renderer: per-seed numbers beside the trivial answer, no verdict read from a comparison in
which neither side learned, and no win read from a difference within the noise."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
report_results = pytest.importorskip("report_results")


def _side(metric: float, baseline: float, se: float | None) -> dict:
    return {"metric": metric, "baseline": baseline, "seconds": 1.0, **({} if se is None else {"se": se})}


def _multitask(
    seed: int, landmarks: tuple[float, float], expression: tuple[float, float], se: float | None = 0.001
) -> dict:
    """Multi-task and single-task values per task; ``se``: every entry's standard error (None: records without)."""
    tasks = {"synth_landmarks": (landmarks, 0.119), "synth_expression": (expression, 0.150)}
    return {
        "seed": seed,
        "steps": 240,
        "multi": {
            "metrics": {t: _side(v[0], b, se) for t, (v, b) in tasks.items()},
            "seconds": 500.0,
            "parameters": 4_400_000,
            "inference_ms_all_tasks": 60.0,
        },
        "single": {t: _side(v[1], b, se) for t, (v, b) in tasks.items()},
        "single_total": {"parameters": 20_000_000, "inference_ms_all_tasks": 300.0, "seconds": 700.0},
    }


def _render(tmp_path: Path, records: list[dict]) -> str:
    results = tmp_path / "claims"
    results.mkdir(parents=True)
    for rec in records:
        (results / f"multitask_s{rec['seed']}.json").write_text(json.dumps(rec))
    out = tmp_path / "claims.md"
    report_results.render(results, out)
    return out.read_text()


def _row(text: str, task: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {task} "))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_every_seed_is_shown_beside_the_trivial_answer(tmp_path):
    text = _render(tmp_path, [_multitask(0, (0.095, 0.100), (0.14, 0.15)), _multitask(1, (0.097, 0.102), (0.15, 0.14))])
    row = _row(text, "synth_landmarks")
    assert row[2:5] == ["0.095 / 0.097", "0.100 / 0.102", "0.119 / 0.119"]
    assert "seeds 0, 1" in text


def test_a_win_on_every_seed_is_read_as_one(tmp_path):
    text = _render(tmp_path, [_multitask(0, (0.095, 0.100), (0.14, 0.15)), _multitask(1, (0.097, 0.102), (0.15, 0.14))])
    assert _row(text, "synth_landmarks")[5] == "yes, every seed"


def test_both_sides_at_the_trivial_answer_say_nothing(tmp_path):
    """Expression at 0.14 / 0.15 against a majority class of 0.150: whichever side is higher, nothing is read."""
    text = _render(
        tmp_path, [_multitask(0, (0.095, 0.100), (0.155, 0.14)), _multitask(1, (0.097, 0.102), (0.156, 0.15))]
    )
    assert _row(text, "synth_expression")[5] == "neither beats the trivial answer: says nothing"


def test_seeds_that_disagree_are_reported_as_mixed(tmp_path):
    text = _render(tmp_path, [_multitask(0, (0.095, 0.100), (0.14, 0.15)), _multitask(1, (0.104, 0.100), (0.15, 0.14))])
    assert _row(text, "synth_landmarks")[5] == "mixed across seeds (yes / no)"


def test_a_difference_within_twice_its_standard_error_is_no_win(tmp_path):
    """0.005 better on each seed, each model's standard error 0.004: within 2 x 0.0057 of the difference."""
    recs = [_multitask(s, (0.095, 0.100), (0.30, 0.25), se=0.004) for s in (0, 1)]
    assert _row(_render(tmp_path / "a", recs), "synth_landmarks")[5] == "within noise, every seed"
    recs[1]["multi"]["metrics"]["synth_landmarks"]["metric"] = 0.080  # 0.020 better: beyond the noise
    assert _row(_render(tmp_path / "b", recs), "synth_landmarks")[5] == "mixed across seeds (within noise / yes)"
    parsing = report_results.seed_outcome("synth_parsing", {"metric": 0.60, "se": 0.01}, {"metric": 0.55, "se": 0.01})
    assert parsing == "yes"
    assert report_results.seed_outcome("synth_age", {"metric": 14.0, "se": 0.5}, {"metric": 12.0, "se": 0.5}) == "no"


def test_records_without_error_bars_compare_the_values_alone_and_say_so(tmp_path):
    recs = [_multitask(s, (0.0995, 0.100), (0.30, 0.25), se=None) for s in (0, 1)]
    text = _render(tmp_path / "a", recs)
    assert _row(text, "synth_landmarks")[5] == "yes, every seed"
    assert "These records carry no error bars: each comparison below reads the values alone." in text
    with_bars = _render(tmp_path / "b", [_multitask(s, (0.0995, 0.100), (0.30, 0.25)) for s in (0, 1)])
    assert "no error bars" not in with_bars and _row(with_bars, "synth_landmarks")[5] == "within noise, every seed"


def test_learned_means_closing_part_of_the_gap_to_a_perfect_score():
    assert report_results.learned("synth_landmarks", 0.09, 0.119)  # an error: the gap to 0
    assert not report_results.learned("synth_landmarks", 0.115, 0.119)
    assert report_results.learned("synth_parsing", 0.5, 0.125)  # a fraction: the gap to 1
    assert not report_results.learned("synth_parsing", 0.126, 0.125)
    # 0.815 against a majority answer of 0.783 closes 15% of the gap to 1, though it is only 4% above it
    assert report_results.learned("synth_attributes", 0.815, 0.783)
    assert not report_results.learned("synth_expression", 0.17, 0.16)


def test_the_multitask_verdicts_are_counted_over_the_tasks(tmp_path):
    text = _render(tmp_path, [_multitask(0, (0.095, 0.100), (0.30, 0.25)), _multitask(1, (0.104, 0.100), (0.31, 0.26))])
    counts = "mixed across seeds (yes / no) on 1 of 2 (synth_landmarks); yes, every seed on 1 of 2 (synth_expression)"
    assert f"Multi-task better? {counts}." in text


def test_each_preset_folder_gets_its_own_section_and_a_run_under_way_is_left_out(tmp_path):
    results = tmp_path / "claims"
    for preset, landmarks in (("full", 0.050), ("standard", 0.095)):
        (results / preset).mkdir(parents=True)
        for seed in (0, 1):
            rec = _multitask(seed, (landmarks, 0.100), (0.30, 0.25))
            (results / preset / f"multitask_s{seed}.json").write_text(json.dumps(rec))
    (results / "full" / "README.md").write_text("The budget at which every task learns.\n")
    under_way = _multitask(2, (0.01, 0.100), (0.30, 0.25))
    del under_way["single_total"]
    (results / "full" / "multitask_s2.json").write_text(json.dumps(under_way))
    out = tmp_path / "claims.md"
    report_results.render(results, out)
    text = out.read_text()
    full, standard = text.split("## `experiments.py --preset full`")[1].split("## `experiments.py --preset standard`")
    assert full.lstrip().startswith("The budget at which every task learns.")
    assert "### Faceptor multi-task vs one model per task" in full and "seeds 0, 1)" in full
    assert _row(full, "synth_landmarks")[2] == "0.050 / 0.050"
    assert _row(standard, "synth_landmarks")[2] == "0.095 / 0.095"


def test_the_recipes_type_weights_are_named_once_and_disagreeing_ones_are_flagged(tmp_path):
    recs = [_multitask(0, (0.095, 0.100), (0.14, 0.15)), _multitask(1, (0.097, 0.102), (0.15, 0.14))]
    for rec in recs:
        rec["recipe"] = {"type_weights": {"landmarks": 40.0, "expression": 3.0}}
    assert "Type weights of every run: landmarks 40, expression 3." in _render(tmp_path / "a", recs)
    recs[1]["recipe"] = {"type_weights": {"landmarks": 15.0, "expression": 3.0}}
    text = _render(tmp_path / "b", recs)
    assert "measured with different type weights" in text and "Type weights of every run" not in text

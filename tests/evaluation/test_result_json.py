"""Result files' JSON: read back equal, indented as json indents, number rows on one line."""

from __future__ import annotations

import json

import numpy as np

from fkt_plugin.evaluation.result_json import result_json


def test_reads_back_equal_with_rows_of_numbers_on_one_line() -> None:
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 500, size=(12, 12)).tolist()
    content = {
        "name": 'run "quoted" é', "seed": 3, "fit_seconds": 12.5, "resumed_from": None,
        "val_still_rising": {"step": 40, "val_acc1": 0.51},
        "labels": {"train": 540, "val": 60}, "empty": {}, "none_yet": [],
        "classes": ["T-shirt/top", "Trouser"], "flags": [True, False, None],
        "test_confusion_matrix": matrix, "runs": [{"a": 1}, {"b": [1.5, 2.5]}],
        7: "an int key",
    }
    text = result_json(content)
    assert json.loads(text) == json.loads(json.dumps(content))
    lines = text.splitlines()
    for row in matrix:
        assert f"    {json.dumps(row)}," in lines or f"    {json.dumps(row)}" in lines
    assert '  "classes": ["T-shirt/top", "Trouser"],' in lines


def test_without_lists_of_numbers_it_is_json_dumps_indent_2() -> None:
    content = {"a": {"b": 1, "c": "x", "d": None, "e": {}}, "f": [{"g": 2.0}, {"h": []}]}
    assert result_json(content) == json.dumps(content, indent=2)


def test_a_thousand_class_matrix_takes_a_line_per_class_and_under_half_the_text() -> None:
    matrix = np.zeros((1000, 1000), dtype=int)
    np.fill_diagonal(matrix, 7)
    content = {"test_confusion_matrix": matrix.tolist()}
    compact, per_number = result_json(content), json.dumps(content, indent=2)
    assert len(compact.splitlines()) == 1000 + 4
    assert len(compact) < len(per_number) / 2.5

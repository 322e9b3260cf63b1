"""The pretraining-measures figure: one panel per measure, in the curriculum's stage order."""

from __future__ import annotations

from curricmusic.reporting.mastery_plots import measure_curves, measures_of


def _results(stage_order: list[str]) -> dict:
    curves = {
        "eval_tokens": [0, 100, 200],
        "val": {"chorales": [3.0, 2.0, 1.5], "scales": [3.0, 1.0, 0.5]},  # as a JSON object may list them
        "style_val": {"folk": [3.0, 2.5, 2.4]},
        "key_share": {"chorales": [0.58, 0.6, 0.7], "scales": [0.58, 0.65, 0.7]},
    }
    run = {"arm": "a", "seed": 0, "status": "done", "curves": curves, "stage_boundaries": [{"tokens_seen": 100}]}
    return {"runs": [run], "arms": {"a": {}}, "curriculum": {"stages": [{"name": n} for n in stage_order]}}


def test_panels_follow_the_curriculum_order_with_the_styles_between():
    assert measures_of(_results(["scales", "chorales"])) == [
        ("val", "scales", "validation loss: scales"),
        ("val", "chorales", "validation loss: chorales"),
        ("style_val", "folk", "zero-shot loss on folk"),
        ("key_share", "scales", "key share: scales"),
        ("key_share", "chorales", "key share: chorales"),
    ]


def test_the_figure_is_drawn_only_when_more_than_validation_losses_were_measured():
    results = _results(["scales", "chorales"])
    png = measure_curves(results)
    assert png is not None and png.startswith(b"\x89PNG")
    for key in ("style_val", "key_share"):
        del results["runs"][0]["curves"][key]
    assert measure_curves(results) is None

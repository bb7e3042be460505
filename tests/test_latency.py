"""``thumbs latency``: the path walked from the definition, cold paying one init per function on it."""

from __future__ import annotations

import pytest

from pipeline.config import PipelineConfig
from thumbs.cli import main
from thumbs.cost import stages
from thumbs.latency import (
    FIRST_CLIENTS,
    HANDLER_IMPORT,
    RUNTIME_INIT,
    TRANSITION,
    critical_path,
    hops,
    totals,
)


def test_the_path_is_the_states_an_upload_enters_one_after_another(definition):
    # Validate, Thumbnails, Resize (the three sizes side by side), Record
    assert critical_path(definition, 3) == (4, ["Validate", "Resize", "Record"])
    # the Map runs MaxConcurrency (10 by default) at a time: 25 sizes are three waves of Resize
    assert critical_path(definition, 25) == (6, ["Validate", "Resize", "Resize", "Resize", "Record"])


def test_the_stage_hops_are_thumbs_costs_stage_times(definition):
    config = PipelineConfig()
    found = {hop.name: hop for hop in hops(config, definition, 12)}
    for stage in stages(config, 12):
        if stage.name != "plan":
            assert found[stage.name.capitalize()].p50_ms == stage.billed_ms
    bigger = {hop.name: hop for hop in hops(config, definition, 48)}
    assert bigger["Validate"].p50_ms > found["Validate"].p50_ms  # decoding scales with megapixels
    assert found["Step Functions: 4 transitions in sequence"].p50_ms == 4 * TRANSITION[0]


def test_a_cold_path_adds_one_init_per_function_and_p99_is_above_p50(definition):
    total = totals(hops(PipelineConfig(), definition, 12))
    init_p50 = RUNTIME_INIT[0] + HANDLER_IMPORT[0] + FIRST_CLIENTS[0]
    assert total["cold p50"] - total["warm p50"] == pytest.approx(3 * init_p50)
    assert total["warm p99"] > total["warm p50"] and total["cold p99"] > total["cold p50"]


def test_every_hop_says_where_its_figure_comes_from(definition):
    for hop in hops(PipelineConfig(), definition, 12):
        assert hop.source.split(" ")[0].rstrip(":") in ("published", "measured", "assumed"), hop


def test_thumbs_latency_prints_the_hops_and_the_totals(capsys, tmp_path):
    assert main(["--state", str(tmp_path), "latency"]) == 0
    printed = capsys.readouterr().out
    assert "S3 -> EventBridge -> StartExecution" in printed and "cold: handler import x 3" in printed
    assert "warm: p50 1.5 s" in printed and "cold: p50 3.5 s" in printed
    assert main(["--state", str(tmp_path), "latency", "--avg-mp", "0"]) == 2
    assert "--avg-mp must be positive" in capsys.readouterr().err

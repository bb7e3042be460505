"""``thumbs cost``: transitions counted from the definition, prices from the dated table."""

from __future__ import annotations

import json

import pytest

from pipeline.config import PipelineConfig
from thumbs.cli import main
from thumbs.cost import count_transitions, estimate, load_prices, stages


def test_transitions_are_counted_from_the_definition(definition):
    # Choice, Validate, Map, one Resize per size, Record: the StateEntered events of a real run
    # (tests/test_aws.py checks 7 against one).
    assert count_transitions(definition, 3) == 7
    assert count_transitions(definition, 5) == 9
    assert count_transitions(definition, 3, "Object Deleted") == 2  # Choice, Forget


def test_the_estimate_follows_the_configuration(definition):
    prices = load_prices()
    base = estimate(PipelineConfig(), definition, prices, 1_000_000, 12, 0)
    assert base["standard"]["Step Functions state transitions"] == pytest.approx(1_000_000 * 7 * 0.025 / 1000)
    retried = estimate(PipelineConfig(), definition, prices, 1_000_000, 12, 2)
    assert retried["transitions_per_image"] == 9
    assert retried["standard"]["Lambda requests"] > base["standard"]["Lambda requests"]
    bigger = estimate(PipelineConfig(), definition, prices, 1_000_000, 48, 0)
    assert bigger["standard"]["Lambda compute"] > base["standard"]["Lambda compute"]
    common = set(base["standard"]) & set(base["express"])
    assert all(base["standard"][k] == base["express"][k] for k in common)  # only Step Functions differs
    assert "Step Functions requests" in base["express"] and "Step Functions state transitions" not in base["express"]


def test_less_memory_means_less_cpu_and_longer_runs():
    small = PipelineConfig.from_context({"resize": {"memory_mb": 256}})
    (_, resize_small, _), (_, resize, _) = stages(small, 12), stages(PipelineConfig(), 12)
    assert resize_small.billed_ms > resize.billed_ms


def test_prices_are_dated_and_can_be_overridden(tmp_path):
    prices = load_prices()
    assert prices["as_of"] and prices["region"] == "us-east-1"
    override = tmp_path / "prices.json"
    override.write_text(json.dumps({"step_functions_standard_per_1000_transitions": 0.05}))
    assert load_prices(str(override))["step_functions_standard_per_1000_transitions"] == 0.05
    override.write_text(json.dumps({"free_lunch": 0}))
    with pytest.raises(ValueError, match="free_lunch"):
        load_prices(str(override))


def test_thumbs_cost_prints_standard_and_express_side_by_side(capsys, tmp_path):
    assert main(["--state", str(tmp_path), "cost", "--images", "1000000"]) == 0
    printed = capsys.readouterr().out
    assert "Standard (USD)" in printed and "Express (USD)" in printed and "175.00" in printed
    assert "7 transitions per image" in printed and "no RedriveExecution" in printed

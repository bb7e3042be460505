"""``thumbs cost``: transitions counted from the definition, prices from the dated table."""

from __future__ import annotations

import json

import pytest

from pipeline.config import PipelineConfig
from thumbs.cli import main
from thumbs.cost import count_transitions, estimate, load_prices, stages


def test_transitions_are_counted_from_the_definition(definition):
    # Validate, Map, one Resize per size, Record: the StateEntered events of a real run
    # (tests/test_aws.py checks 6 against one). A deletion starts no execution.
    assert count_transitions(definition, 3) == 6
    assert count_transitions(definition, 5) == 8


def test_the_estimate_follows_the_configuration(definition):
    prices = load_prices()
    base = estimate(PipelineConfig(), definition, prices, 1_000_000, 12, 0)
    assert base["standard"]["Step Functions state transitions"] == pytest.approx(1_000_000 * 6 * 0.025 / 1000)
    retried = estimate(PipelineConfig(), definition, prices, 1_000_000, 12, 2)
    assert retried["transitions_per_image"] == 8
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
    assert "Standard (USD)" in printed and "Express (USD)" in printed and "150.00" in printed
    assert "6 transitions per image" in printed and "no RedriveExecution" in printed


@pytest.fixture(scope="module")
def backfill_definition(template):
    from thumbs.template import state_machine_definition

    return state_machine_definition(template, lambda ref: "arn", output="BackfillStateMachineArn")


def test_a_batch_enters_plan_images_each_start_and_the_checks(backfill_definition):
    from thumbs.cost import batch_transitions

    (processor,) = [s["ItemProcessor"] for s in backfill_definition["States"].values() if s["Type"] == "Map"]
    # Plan, Images, Tally, AnyImages, BatchDone; with images also one Regenerate each, CheckImages, AnyFailed
    assert batch_transitions(processor, 0) == 5
    assert batch_transitions(processor, 10) == 5 + 10 + 2


def test_a_backfill_costs_the_pipeline_per_stale_image_and_little_when_nothing_is_stale(
    definition, backfill_definition
):
    from thumbs.cost import backfill_estimate

    config, prices = PipelineConfig.from_context({"backfill": {"batch_size": 50}}), load_prices()
    scenarios = backfill_estimate(config, definition, backfill_definition, prices, 1_000_000, 12)
    stale, none = scenarios["all stale"], scenarios["none stale"]
    pipeline = estimate(config, definition, prices, 1_000_000, 12, 0)["standard"]
    assert stale["Pipeline: Lambda compute"] == pytest.approx(pipeline["Lambda compute"])
    assert not [k for k in none if k.startswith("Pipeline:")]  # nothing stale: no pipeline runs
    batches = 1_000_000 / 50
    # three top-level states, a start per batch, 5 states per empty batch
    assert none["Backfill: Map Run and batch transitions"] == pytest.approx((3 + batches * 6) * 0.025 / 1000)
    assert none["Backfill: S3 LIST (ItemReader)"] == pytest.approx(1000 * 0.005 / 1000)  # a LIST per 1,000 keys
    assert sum(none.values()) < sum(stale.values()) / 50
    bigger = backfill_estimate(PipelineConfig.from_context({"backfill": {"batch_size": 100}}), definition,
                               backfill_definition, prices, 1_000_000, 12)  # fmt: skip
    assert sum(bigger["none stale"].values()) < sum(none.values())  # larger batches, fewer child executions


def test_thumbs_cost_backfill_prints_both_cases(capsys, tmp_path):
    assert main(["--state", str(tmp_path), "cost", "--backfill", "10000000"]) == 0
    printed = capsys.readouterr().out
    assert "Backfill of 10,000,000 stored objects" in printed
    assert "all stale (USD)" in printed and "none stale (USD)" in printed and "Pipeline: Lambda compute" in printed
    with pytest.raises(SystemExit):
        main(["cost", "--backfill", "10", "--images", "10"])  # one or the other

"""``thumbs burst``: the simulation that chose the throttle retrier, run on the synthesized definition.

At a tenth of the scale of docs/bursts.md (the same ratio of demand to concurrency), the
deployed retrier must drain a burst with nothing FAILED where the transient policy alone
loses uploads, and a perfect buffer is the bound neither can beat.
"""

from __future__ import annotations

import random

import pytest

from pipeline.workflow import THROTTLE_RETRY
from thumbs.burst import Retrier, simulate, stage_tasks, throttle_retrier
from thumbs.cli import main as thumbs


@pytest.fixture(scope="module")
def tasks(definition):
    return stage_tasks(definition)


def test_the_template_s_throttle_retrier_is_read_as_deployed(tasks):
    for stage, task in tasks.items():
        own, before = throttle_retrier(task), throttle_retrier(task, own=False)
        assert own == Retrier(
            interval=THROTTLE_RETRY["interval_seconds"],
            backoff=THROTTLE_RETRY["backoff_rate"],
            max_attempts=THROTTLE_RETRY["max_attempts"],
            max_delay=THROTTLE_RETRY["max_delay_seconds"],
            full_jitter=True,
        ), stage
        assert before is not None and before.max_attempts < own.max_attempts, stage


def test_full_jitter_draws_between_zero_and_the_capped_backoff():
    retrier = Retrier(interval=1, backoff=2, max_attempts=60, max_delay=60, full_jitter=True)
    rng = random.Random(7)
    for retry in range(1, 61):
        cap = min(60, 2 ** (retry - 1))
        draws = [retrier.delay(retry, rng) for _ in range(50)]
        assert all(0 <= d <= cap for d in draws) and max(draws) > cap / 2


def test_the_deployed_retrier_drains_what_the_transient_policy_loses(tasks):
    common = dict(
        durations_ms={"Validate": 231, "Resize": 86, "Record": 110},
        reserved={"Validate": None, "Resize": None, "Record": None},
        uploads=5000, seconds=6, concurrency=30, sizes=3, map_concurrency=10,
    )  # fmt: skip
    deployed = {s: throttle_retrier(t) for s, t in tasks.items()}
    transient = {s: throttle_retrier(t, own=False) for s, t in tasks.items()}
    ours = simulate(policy="deployed", retriers=deployed, **common)
    before = simulate(policy="transient", retriers=transient, **common)
    bound = simulate(policy="buffer", retriers=deployed, queue=True, **common)
    assert ours.failed == 0 and ours.succeeded == 5000 and ours.throttles > 5000
    assert before.failed > 1000  # most of the backlog outlives 4 attempts over at most ~15 s
    assert bound.throttles == 0 and bound.failed == 0
    assert bound.drain_seconds <= ours.drain_seconds < 3 * bound.drain_seconds
    assert ours.peak_concurrency <= 30 and bound.peak_concurrency <= 30


def test_reserved_concurrency_caps_its_stage_in_the_simulation(tasks):
    deployed = {s: throttle_retrier(t) for s, t in tasks.items()}
    result = simulate(
        policy="reserved", retriers=deployed, durations_ms={"Validate": 231, "Resize": 86, "Record": 110},
        reserved={"Validate": None, "Resize": 5, "Record": None}, uploads=500, seconds=5, concurrency=30,
        sizes=3, map_concurrency=10, queue=True,
    )  # fmt: skip
    assert result.failed == 0 and result.succeeded == 500
    with pytest.raises(ValueError, match="leaves nothing"):
        simulate(
            policy="x", retriers=deployed, durations_ms={"Validate": 1, "Resize": 1, "Record": 1},
            reserved={"Validate": 30, "Resize": None, "Record": None}, uploads=1, seconds=1, concurrency=30,
            sizes=3, map_concurrency=10,
        )  # fmt: skip


def test_thumbs_burst_prints_the_three_policies(tmp_path, capsys):
    args = ["--state", str(tmp_path), "burst", "--uploads", "2000", "--seconds", "6", "--concurrency", "20"]
    assert thumbs(args) == 0
    printed = capsys.readouterr().out
    for policy in ("deployed: throttle retrier", "throttles on the transient retrier", "bound of a perfect buffer"):
        assert policy in printed
    assert "60 attempts, 1 s x2, at most 60 s apart, full jitter" in printed
    assert thumbs(["--state", str(tmp_path), "burst", "--uploads", "0"]) == 2

"""The console's server-side paging and filters at 10,000 executions.

A module of its own: it starts a second local stack, and moto's backends are one per process,
so it must not run while another module's stack is up.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import requests

from thumbs.local.session import Session
from thumbs.local.state import StateFolder

MACHINE = "arn:aws:states:us-east-1:123456789012:execution:PipelineC660917D"


def saved_runs(state: StateFolder, count: int) -> None:
    """``count`` finished runs, one second apart, every hundredth FAILED, as an earlier process saved them."""
    machine, start = MACHINE, datetime(2026, 11, 1, tzinfo=UTC)
    for index in range(count):
        begun = start + timedelta(seconds=index)
        state.save_execution(
            {"executionArn": f"{machine}:run-{index:05d}", "name": f"run-{index:05d}",
             "status": "FAILED" if index % 100 == 0 else "SUCCEEDED", "startDate": begun.isoformat(),
             "stopDate": (begun + timedelta(seconds=2)).isoformat(),
             "input": {"detail": {"object": {"key": f"photos/{index:05d}.jpg"}}}, "events": []}
        )  # fmt: skip


def first_page_seconds(base: str) -> float:
    """The median of five first pages: the figure a user waits for."""
    times = []
    for _ in range(5):
        started = time.perf_counter()
        requests.get(f"{base}/api/executions", timeout=60).raise_for_status()
        times.append(time.perf_counter() - started)
    return sorted(times)[2]


def test_paging_and_filters_at_10000_executions(tmp_path):
    few = StateFolder(tmp_path / "few")
    saved_runs(few, 10)
    with Session(few) as session:
        few_seconds = first_page_seconds(f"{session.stack.endpoint}/_console")
    state = StateFolder(tmp_path / "state")
    saved_runs(state, 10_000)
    with Session(state) as session:
        base = f"{session.stack.endpoint}/_console"
        first_seconds = first_page_seconds(base)
        first = requests.get(f"{base}/api/executions", timeout=60).json()
        second = requests.get(f"{base}/api/executions", params={"token": first["next"]}, timeout=60).json()
        failed = requests.get(f"{base}/api/executions", params={"status": "FAILED"}, timeout=60).json()
        searched = requests.get(f"{base}/api/executions", params={"q": "photos/0999"}, timeout=60).json()
        page = requests.get(f"{base}/executions", timeout=60)
    print(
        f"first page: {first_seconds * 1000:.0f} ms at 10,000 executions, {few_seconds * 1000:.0f} ms at 10 "
        f"({first_seconds / few_seconds:.1f}x)"
    )
    names = [r["name"] for r in first["executions"]]
    assert names == [f"run-{i:05d}" for i in range(9999, 9949, -1)]  # newest first, 50 a page
    assert [r["name"] for r in second["executions"]] == [f"run-{i:05d}" for i in range(9949, 9899, -1)]
    assert all(r["status"] == "FAILED" for r in failed["executions"]) and len(failed["executions"]) == 50
    assert failed["executions"][0]["name"] == "run-09900" and failed["next"]
    assert [r["key"] for r in searched["executions"]] == [f"photos/0999{i}.jpg" for i in range(9, -1, -1)]
    assert page.status_code == 200 and page.text.count("/_console/executions/run-") == 50
    assert json.loads(json.dumps(first))["executions"][0]["key"] == "photos/09999.jpg"

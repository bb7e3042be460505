"""Bursts: Lambda's concurrency limits in the local runtime, and a burst of uploads that drains.

The runtime throttles as Lambda does: a function's ReservedConcurrentExecutions, and the
account's limit (``--concurrency``) for the rest. Then the burst: 500 uploads at once (50
outside CI) against an account concurrency of 2 end with no FAILED execution, because the
tasks' throttle retrier outlasts the backlog.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from thumbs.local.lambda_runtime import FunctionSpec, LocalLambdaRuntime, Throttled

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS.parent / "benchmarks"))

from burst import run_burst, summary  # noqa: E402 - benchmarks/ is not a package

UPLOADS = 500 if os.environ.get("CI") == "true" else 50


def spec(name: str, handler: str = "echo", reserved: int | None = None) -> FunctionSpec:
    return FunctionSpec(name, f"lambda_fixtures.probe.{handler}", {}, 10, 256, reserved)


def runtime(tmp_path: Path, account: int | None, **functions: FunctionSpec) -> LocalLambdaRuntime:
    environment = {"PATH": "/usr/bin:/bin"}
    return LocalLambdaRuntime(functions, TESTS, environment, tmp_path / "logs", account_concurrency=account)


def hold(rt: LocalLambdaRuntime, name: str, seconds: float) -> threading.Thread:
    """An invocation of ``name`` that keeps its concurrency for ``seconds``; returns once it is counted."""
    before = rt._running[name]
    thread = threading.Thread(target=rt.invoke, args=(name, json.dumps({"sleep": seconds}).encode()))
    thread.start()
    wait_until(lambda: rt._running[name] > before)
    return thread


def wait_until(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_past_the_account_limit_an_invoke_is_throttled_not_queued(tmp_path):
    rt = runtime(tmp_path, 1, a=spec("a"), b=spec("b"))
    try:
        busy = hold(rt, "a", 5)
        with pytest.raises(Throttled) as throttled:
            rt.invoke("b", b"{}")  # another function: the account's limit is shared
        assert busy.is_alive()  # refused while the limit was taken, not queued behind it
        assert throttled.value.reason == "ConcurrentInvocationLimitExceeded"
        busy.join()
        payload, error = rt.invoke("b", b"{}")  # the limit is free again
        assert error is None and json.loads(payload)["function_name"] == "b"
        assert rt.throttles == {"a": 0, "b": 1} and rt.invocations == {"a": 1, "b": 1} and rt.peak_concurrency == 1
    finally:
        rt.close()


def test_reserved_concurrency_caps_its_function_and_is_set_aside_from_the_account(tmp_path):
    rt = runtime(tmp_path, 3, capped=spec("capped", reserved=1), shared=spec("shared"))
    try:
        busy = hold(rt, "capped", 5)
        with pytest.raises(Throttled) as throttled:
            rt.invoke("capped", b"{}")
        assert throttled.value.reason == "ReservedFunctionConcurrentInvocationLimitExceeded"
        # 3 - 1 reserved leaves 2 for the others, whatever the capped function is doing
        others = [hold(rt, "shared", 5), hold(rt, "shared", 5)]
        with pytest.raises(Throttled, match="ConcurrentInvocationLimitExceeded"):
            rt.invoke("shared", b"{}")
        for thread in (busy, *others):
            thread.join()
    finally:
        rt.close()


def test_reservations_that_leave_nothing_for_the_others_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"reserves 4 concurrent executions .*account concurrency of 4"):
        runtime(tmp_path, 4, a=spec("a", reserved=4), b=spec("b"))


def test_a_throttled_asynchronous_event_waits_and_runs_without_using_an_attempt(tmp_path):
    rt = runtime(tmp_path, 1, slow=spec("slow"), notice=spec("notice", "touch"))
    mark = tmp_path / "ran"
    try:
        busy = hold(rt, "slow", 5)
        rt.invoke_async("notice", json.dumps({"path": str(mark)}).encode(), retries=0)
        wait_until(lambda: rt.throttles["notice"] >= 1)
        assert not mark.exists()
        busy.join()
        rt.wait_for_async(timeout=30)
        assert len(mark.read_text().splitlines()) == 1  # ran exactly once, though no retry was allowed
    finally:
        rt.close()


def test_the_template_s_reserved_concurrency_reaches_the_local_runtime(tmp_path):
    """``reserved_concurrency`` in cdk.json -> ReservedConcurrentExecutions -> the local limit."""
    from thumbs.local.stack import LocalStack
    from thumbs.local.state import StateFolder
    from thumbs.template import load_template, resources_of_type

    state = StateFolder(tmp_path / "state")
    template = json.loads(json.dumps(load_template(state.cache_dir)))
    functions = resources_of_type(template, "AWS::Lambda::Function")
    resize = next(f for name, f in functions.items() if name.startswith("FunctionsResize"))
    resize["Properties"]["ReservedConcurrentExecutions"] = 7
    specs = LocalStack(template, state.root)._function_specs()
    reserved = {s.handler.split(".")[0]: s.reserved_concurrency for s in specs.values()}
    assert reserved == {"validate": None, "resize": 7, "record": None, "plan": None}


def test_a_burst_past_the_account_concurrency_ends_with_nothing_failed(tmp_path, capsys):
    result = run_burst(UPLOADS, tmp_path, concurrency=2)
    assert result["finished"]
    statuses = [e["status"] for e in result["executions"]]
    assert len(statuses) == UPLOADS and set(statuses) == {"SUCCEEDED"}, summary(result)
    records = {r["key"]: r for r in result["records"]}
    assert set(records) == set(result["keys"])
    assert all(r["status"] == "SUCCEEDED" and len(r["thumbnails"]) == 3 for r in records.values())
    assert result["throttles"] > UPLOADS  # the limit really bit, many times over
    assert result["peak_concurrency"] <= 2
    with capsys.disabled():  # in the suite's output: CI's log keeps the figure
        print(f"\nburst: {UPLOADS} uploads at once, account concurrency 2: {summary(result)}")

"""The local Lambda runtime: warm workers, isolation, concurrency, Lambda's timeout and memory errors."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

from thumbs.local.lambda_runtime import FaultSwitch, FunctionSpec, LocalLambdaRuntime
from thumbs.local.lambda_worker import NICENESS, PRIMED_SERVICES
from thumbs.local.stack import AS_OVER_HTTPS, worker_environment

TESTS = Path(__file__).resolve().parent


def spec(name: str, handler: str, *, timeout: int = 10, memory: int = 256, env: dict | None = None) -> FunctionSpec:
    return FunctionSpec(name, f"lambda_fixtures.probe.{handler}", env or {}, timeout, memory)


@pytest.fixture
def runtime(tmp_path):
    functions = {
        "a": spec("a", "echo", env={"ONLY_A": "a-secret"}),
        "b": spec("b", "echo", env={"ONLY_B": "b-value"}),
        "slow": spec("slow", "echo", timeout=1),
        "hungry": spec("hungry", "allocate", memory=128),
        "broken": spec("broken", "fail"),
        "sdk": spec("sdk", "sdk", env={"AWS_REGION": "us-east-1"}),
        "loaded": spec("loaded", "loaded"),
    }
    rt = LocalLambdaRuntime(functions, TESTS, {"PATH": "/usr/bin:/bin"}, tmp_path / "logs")
    yield rt
    rt.close()


def call(rt, name, event):
    payload, error = rt.invoke(name, json.dumps(event).encode())
    return json.loads(payload), error


def test_workers_stay_warm_and_import_once(runtime):
    first, _ = call(runtime, "a", {})
    second, _ = call(runtime, "a", {})
    assert first["pid"] == second["pid"] and first["imported_at"] == second["imported_at"]
    assert first["function_name"] == "a" and 0 < first["remaining_ms"] <= 10_000


def test_workers_yield_the_cpu_to_the_emulated_services(runtime):
    """Under load the moto process answers first, as AWS's services are never starved by a function."""
    answer, _ = call(runtime, "a", {})
    assert answer["niceness"] == min(19, os.nice(0) + NICENESS)


def test_a_worker_has_the_sdk_ready_before_its_first_invocation(runtime):
    """Its clients' models are read before it says ready, so a restarted function's first upload skips that."""
    answer, error = call(runtime, "sdk", {})
    assert error is None
    assert answer["services"] == sorted(PRIMED_SERVICES) == ["dynamodb", "s3"]


def test_a_worker_holds_what_the_handlers_import_before_it_imports_its_own(runtime):
    """Forked from the zygote: pydantic (the event parser) and Pillow's readers are not paid again per worker."""
    wanted = ["pydantic", "PIL.JpegImagePlugin", "PIL.TiffImagePlugin", "aws_lambda_powertools.utilities.parser.models"]
    answer, error = call(runtime, "loaded", {"modules": [*wanted, "imaging", "awsio"]})
    assert error is None
    assert answer["loaded"] == sorted(wanted)  # the project's own modules never: a restart reads them from disk


def test_a_workers_sdk_is_set_as_over_https_and_never_reads_the_users_config(tmp_path):
    """The stack's config file, not ``~/.aws/config``: no body hash in the signature, no profile of the user's."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "config").write_text("[default]\ns3 =\n    addressing_style = virtual\n")
    endpoint = "http://127.0.0.1:9"  # nothing listens there; the probe sends nothing

    def probe(environment: dict[str, str]) -> dict:
        rt = LocalLambdaRuntime({"p": spec("p", "sdk_settings")}, TESTS, environment, tmp_path / "logs")
        try:
            answer, error = call(rt, "p", {})
        finally:
            rt.close()
        assert error is None, answer
        return answer

    credentials = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_REGION": "us-east-1"}
    plain = probe({"PATH": "/usr/bin:/bin", "HOME": str(home), "AWS_ENDPOINT_URL": endpoint, **credentials})
    assert plain["s3"] == {"addressing_style": "virtual"}  # what a worker read before: the user's profile
    assert plain["content_sha256"] != "UNSIGNED-PAYLOAD"  # and over HTTP, a hash of the body

    ours = probe({**worker_environment(endpoint, tmp_path / "state"), "HOME": str(home)})
    assert ours["s3"] == AS_OVER_HTTPS
    assert ours["content_sha256"] == "UNSIGNED-PAYLOAD"
    assert ours["url"] == f"{endpoint}/bucket/key"  # path-style, as the local endpoint needs


def test_workers_are_forked_from_one_zygote_which_is_started_again_if_it_dies(runtime):
    a, _ = call(runtime, "a", {})
    b, _ = call(runtime, "b", {})
    assert a["parent"] == b["parent"] != os.getpid()
    os.kill(a["parent"], signal.SIGKILL)
    runtime.restart("a")  # its new worker needs a zygote
    again, error = call(runtime, "a", {"env": ["ONLY_A"]})
    assert error is None and again["parent"] not in (a["parent"], os.getpid())
    assert again["env"] == {"ONLY_A": "a-secret"}


def test_each_function_sees_only_its_own_environment(runtime):
    a, _ = call(runtime, "a", {"env": ["ONLY_A", "ONLY_B", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]})
    b, _ = call(runtime, "b", {"env": ["ONLY_A", "ONLY_B"]})
    assert a["env"] == {"ONLY_A": "a-secret", "ONLY_B": None, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256"}
    assert b["env"] == {"ONLY_A": None, "ONLY_B": "b-value"}
    assert a["pid"] != b["pid"]


def test_invocations_run_concurrently_in_separate_workers(runtime):
    results = []
    threads = [threading.Thread(target=lambda: results.append(call(runtime, "a", {"sleep": 1.5})[0])) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first, second = sorted(results, key=lambda r: r["started"])
    assert first["pid"] != second["pid"]
    assert second["started"] < first["ended"]  # the two ran at the same time


def test_a_timeout_is_reported_as_lambda_reports_it(runtime):
    result, error = call(runtime, "slow", {"sleep": 5})
    assert error == "Unhandled"
    assert result["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in result["errorMessage"]
    again, error = call(runtime, "slow", {})  # a fresh worker takes over
    assert error is None and "pid" in again


def test_exceeding_memory_size_fails_like_lambda_and_the_runner_survives(runtime):
    result, error = call(runtime, "hungry", {"mb": 400})
    assert error == "Unhandled" and result["errorType"] == "Runtime.OutOfMemory"
    ok, error = call(runtime, "hungry", {"mb": 10})
    assert error is None and ok == {"allocated_mb": 10}


def test_handler_errors_carry_their_type(runtime):
    result, error = call(runtime, "broken", {})
    assert error == "Unhandled" and result["errorType"] == "ValueError" and result["errorMessage"] == "boom"


def test_faults_are_injected_then_run_out(tmp_path):
    functions = {"a": spec("a", "echo")}
    faults = FaultSwitch.parse(["a=transient:2", "a=throttle"])
    rt = LocalLambdaRuntime(functions, TESTS, {"PATH": "/usr/bin:/bin"}, tmp_path, faults=faults)
    try:
        kinds = [call(rt, "a", {})[0].get("errorType") for _ in range(4)]
    finally:
        rt.close()
    assert kinds == ["TransientError", "TransientError", "Lambda.TooManyRequestsException", None]


def test_faults_can_let_invocations_through_first():
    faults = FaultSwitch.parse(["resize=transient:2@1"])
    assert [faults.take("resize") for _ in range(4)] == [None, "transient", "transient", None]


@pytest.mark.parametrize(
    "spec_text", ["resize", "resize=explode", "resize=transient:x", "resize=transient:0", "resize=oom@x"]
)
def test_bad_fault_specs_are_refused(spec_text):
    with pytest.raises(ValueError, match="fault"):
        FaultSwitch.parse([spec_text])

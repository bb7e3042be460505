"""The local console: its pages and their JSON twins, served by the local stack at /_console/ (server tests).

The browser tests (Playwright on Debian's Chromium) come with the graph view; these drive the
same routes over HTTP.
"""

from __future__ import annotations

import pytest
import requests

from tests.images import encode, photo
from thumbs.console.history import state_runs
from thumbs.local.lambda_runtime import FaultSwitch
from thumbs.local.session import Session
from thumbs.local.state import StateFolder

HOSTILE_KEY = "<script>alert(1)</script>&.jpg"


def test_each_state_s_outcome_attempts_and_iterations_come_from_the_history():
    definition = {
        "States": {"V": {"Type": "Task"}, "M": {"Type": "Map"}, "R": {"Type": "Task"}, "Rej": {"Type": "Task"}}
    }
    definition["States"]["X"] = {"Type": "Pass"}

    def at(second):
        return f"2026-11-29T10:00:{second:02d}.000Z"

    def event(i, prev, kind, second, **details):
        return {"id": i, "previousEventId": prev, "type": kind, "timestamp": at(second), **details}

    def entered(name):
        return {"stateEnteredEventDetails": {"name": name, "input": '{"a": 1}'}}

    def exited(name):
        return {"stateExitedEventDetails": {"name": name, "output": '{"b": 2}'}}

    failed = {"lambdaFunctionFailedEventDetails": {"error": "TransientError", "cause": "boom"}}
    events = [
        event(1, 0, "ExecutionStarted", 0),
        event(2, 1, "TaskStateEntered", 0, **entered("V")),
        event(3, 2, "LambdaFunctionScheduled", 0),
        event(4, 3, "LambdaFunctionFailed", 1, **failed),
        event(5, 4, "LambdaFunctionScheduled", 2),
        event(6, 5, "LambdaFunctionSucceeded", 3),
        event(7, 6, "TaskStateExited", 3, **exited("V")),
        event(8, 7, "MapStateEntered", 3, **entered("M")),
        event(9, 8, "MapIterationStarted", 3, mapIterationStartedEventDetails={"name": "M", "index": 0}),
        event(10, 8, "MapIterationStarted", 3, mapIterationStartedEventDetails={"name": "M", "index": 1}),
        event(11, 9, "MapIterationSucceeded", 4, mapIterationSucceededEventDetails={"name": "M", "index": 0}),
        event(12, 10, "MapIterationFailed", 5, mapIterationFailedEventDetails={"name": "M", "index": 1}),
        event(13, 12, "MapStateFailed", 5),
        event(14, 13, "TaskStateEntered", 5, **entered("Rej")),  # a Catch on the Map led here
        event(15, 14, "LambdaFunctionScheduled", 5),
        event(16, 15, "LambdaFunctionFailed", 6, **failed),
        event(17, 16, "ExecutionFailed", 6),
    ]
    runs = {r.name: r for r in state_runs(definition, events, "FAILED")}
    assert [r.name for r in state_runs(definition, events, "FAILED")] == ["V", "M", "R", "Rej", "X"]
    assert runs["V"].outcome == "retried" and [a.outcome for a in runs["V"].attempts] == ["failed", "succeeded"]
    assert runs["V"].attempts[0].seconds == 1.0 and runs["V"].attempts[0].error == "TransientError"
    assert runs["V"].input == {"a": 1} and runs["V"].output == {"b": 2} and runs["V"].seconds == 3.0
    assert runs["M"].outcome == "caught" and runs["M"].iterations == {0: "succeeded", 1: "failed"}
    assert runs["Rej"].outcome == "failed" and runs["Rej"].error == "TransientError"
    assert runs["R"].outcome == runs["X"].outcome == "not entered"


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    """A stack with one good upload (under a hostile key), one rejected and two failed runs."""
    state = StateFolder(tmp_path_factory.mktemp("state"))
    with Session(state, faults=FaultSwitch.parse(["validate=transient:10@2"])) as session:
        session.upload(HOSTILE_KEY, encode(photo(400, 300), "JPEG"))
        assert session.wait(1, "the good one")
        session.upload("not-an-image.jpg", b"plain text")
        assert session.wait(2, "the rejected one")
        session.upload("fails-too.jpg", encode(photo(), "JPEG"))  # validate fails past its retries...
        assert session.wait(3, "a failed one")
        session.upload("fails.jpg", encode(photo(), "JPEG"))  # ...twice
        assert session.wait(4, "another failed one")
        yield session, f"{session.stack.endpoint}/_console"


def rows(base: str, **params: str) -> list[dict]:
    return requests.get(f"{base}/api/executions", params=params, timeout=30).json()["executions"]


def test_the_list_shows_status_key_start_and_duration_newest_first_with_filters(console):
    _, base = console
    listed = rows(base)
    assert [r["key"] for r in listed] == ["fails.jpg", "fails-too.jpg", "not-an-image.jpg", HOSTILE_KEY]
    assert [r["status"] for r in listed] == ["FAILED", "FAILED", "SUCCEEDED", "SUCCEEDED"]
    assert all(r["seconds"] > 0 and r["startDate"] for r in listed)
    assert [r["key"] for r in rows(base, status="FAILED")] == ["fails.jpg", "fails-too.jpg"]
    assert [r["key"] for r in rows(base, q="IMAGE")] == ["not-an-image.jpg"]  # a part of the key, any case
    page = requests.get(f"{base}/executions", params={"status": "FAILED"}, timeout=30).text
    assert "Redrive all failed" in page and "fails.jpg" in page and "not-an-image.jpg" not in page


def test_keys_and_messages_are_text_never_markup(console):
    _, base = console
    name = rows(base, q="script")[0]["name"]
    for page in (requests.get(f"{base}/", timeout=30).text, requests.get(f"{base}/executions/{name}", timeout=30).text):
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;.jpg" in page


def test_the_execution_page_shows_states_attempts_events_record_and_thumbnails(console):
    session, base = console
    good = rows(base, q="script")[0]["name"]
    view = requests.get(f"{base}/api/executions/{good}", timeout=30).json()
    outcomes = {s["name"]: s["outcome"] for s in view["states"]}
    assert outcomes["Validate"] == outcomes["Record"] == outcomes["Thumbnails"] == "succeeded"
    assert outcomes["RecordRejected"] == outcomes["Rejected"] == "not entered"
    (mapped,) = [s for s in view["states"] if s["name"] == "Thumbnails"]
    assert mapped["iterations"] == {"0": "succeeded", "1": "succeeded", "2": "succeeded"}
    assert sorted(mapped["labels"].values()) == ["1024 px", "128 px", "256 px"]  # each item's size
    assert view["events"][0]["type"] == "ExecutionStarted" and view["events"][-1]["type"] == "ExecutionSucceeded"
    assert view["record"]["status"] == "SUCCEEDED" and len(view["record"]["thumbnails"]) == 3
    thumbnail = view["record"]["thumbnails"][0]
    page = requests.get(f"{base}/executions/{good}", timeout=30).text
    assert f"{thumbnail['size']} px: {thumbnail['width']}\u00d7{thumbnail['height']}" in page
    image = requests.get(f"{base}/objects/{session.stack.thumbnail_bucket}/{thumbnail['key']}", timeout=30)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/jpeg"
    assert len(image.content) == thumbnail["bytes"]
    original = requests.get(f"{base}/objects/{session.stack.upload_bucket}/{requests.utils.quote(HOSTILE_KEY)}")
    assert original.status_code == 200 and original.headers["Content-Security-Policy"] == "sandbox"
    assert requests.get(f"{base}/objects/another-bucket/x", timeout=30).status_code == 404

    rejected = rows(base, q="not-an-image")[0]["name"]
    view = requests.get(f"{base}/api/executions/{rejected}", timeout=30).json()
    outcomes = {s["name"]: s["outcome"] for s in view["states"]}
    assert outcomes["Validate"] == "caught" and outcomes["RecordRejected"] == "succeeded"
    assert view["record"]["status"] == "REJECTED" and view["record"]["error"]["code"] == "UnsupportedFormat"

    failed = rows(base, q="fails.jpg")[0]["name"]
    view = requests.get(f"{base}/api/executions/{failed}", timeout=30).json()
    (validate,) = [s for s in view["states"] if s["name"] == "Validate"]
    assert validate["outcome"] == "failed" and len(validate["attempts"]) == 5
    assert all(a["error"] == "TransientError" and a["seconds"] is not None for a in validate["attempts"])
    assert "Redrive</button>" in requests.get(f"{base}/executions/{failed}", timeout=30).text
    assert requests.get(f"{base}/executions/no-such-run", timeout=30).status_code == 404


def test_redrive_from_the_page_succeeds_and_uploads_run_the_pipeline(console):
    session, base = console
    failed = rows(base, q="fails.jpg")[0]["name"]
    other_site = requests.post(f"{base}/executions/{failed}/redrive", headers={"Origin": "http://elsewhere"})
    assert other_site.status_code == 403  # a page of another site cannot act on the console
    pressed = requests.post(f"{base}/executions/{failed}/redrive", allow_redirects=False, timeout=60)
    assert pressed.status_code == 303 and "redriven" in requests.utils.unquote(pressed.headers["Location"])
    assert session.wait(5, "the redrive")
    assert [r["status"] for r in rows(base) if r["name"] == failed] == ["SUCCEEDED"]

    everything = requests.post(f"{base}/redrive-failed", allow_redirects=False, timeout=60)  # the one left
    said = requests.utils.unquote(everything.headers["Location"])
    assert everything.status_code == 303 and "1 failed run(s)" in said and "redriven" in said
    assert session.wait(6, "redrive all failed")
    assert rows(base, status="FAILED") == []

    dropped = requests.post(
        f"{base}/upload", files=[("file", ("dropped.jpg", encode(photo(), "JPEG")))], allow_redirects=False, timeout=60
    )
    assert dropped.status_code == 303 and "dropped.jpg" in requests.utils.unquote(dropped.headers["Location"])
    assert session.wait(7, "the dropped upload")
    assert session.record(f"s3://{session.stack.upload_bucket}/dropped.jpg")["status"] == "SUCCEEDED"


def test_the_gallery_shows_every_record_with_its_status_and_the_reason_for_each_rejection(console):
    session, base = console
    everything = requests.get(f"{base}/api/records", timeout=30).json()["records"]
    assert {r["status"] for r in everything} >= {"SUCCEEDED", "REJECTED"}
    rejected = requests.get(f"{base}/api/records", params={"status": "REJECTED"}, timeout=30).json()["records"]
    assert [r["key"] for r in rejected] == ["not-an-image.jpg"]
    page = requests.get(f"{base}/records", params={"status": "REJECTED"}, timeout=30).text
    assert "UnsupportedFormat" in page and "no thumbnail" in page and HOSTILE_KEY not in page
    page = requests.get(f"{base}/records", params={"status": "SUCCEEDED"}, timeout=30).text
    assert f"/_console/objects/{session.stack.thumbnail_bucket}/128/" in page  # the smallest thumbnail
    assert "&lt;script&gt;" in page and "<script>alert" not in page


def test_the_timeline_says_where_the_seconds_went(console):
    _, base = console
    good = rows(base, q="script")[0]["name"]
    timeline = requests.get(f"{base}/api/executions/{good}", timeout=30).json()["timeline"]
    bars = {bar["name"]: bar for bar in timeline["bars"]}
    assert list(bars) == ["Validate", "Thumbnails", "Record"]  # in the order they ran
    assert all(0 <= bar["left"] <= 100 and 0 < bar["width"] <= 100 for bar in bars.values())
    assert bars["Validate"]["left"] <= bars["Thumbnails"]["left"] <= bars["Record"]["left"]
    assert abs(sum(bar["seconds"] for bar in bars.values()) - timeline["total"]) < timeline["total"]
    assert "Where the seconds went" in requests.get(f"{base}/executions/{good}", timeout=30).text


def test_a_running_run_s_page_refreshes_itself_and_a_finished_one_does_not():
    from thumbs.console.pages import environment

    page = environment().get_template("execution.html")
    view = {"states": [], "events": [], "record": None, "graph": {"nodes": [], "edges": []},
            "timeline": {"bars": [], "total": 0}, "key": "a.jpg", "bucket": "b", "thumbnail_bucket": "t"}  # fmt: skip
    running = page.render(**view, execution={"name": "n", "status": "RUNNING", "startDate": "2026-11-29T10:00:00"})
    finished = page.render(**view, execution={"name": "n", "status": "SUCCEEDED", "startDate": "2026-11-29T10:00:00"})
    assert '<meta http-equiv="refresh" content="2">' in running and "Updates every 2 s" in running
    assert "http-equiv" not in finished

"""The local console at ``/_console/``: the Step Functions console's view of every run, on one machine.

``thumbs serve`` mounts it beside moto on the same port, under a path no S3 bucket can take
(bucket names cannot start with ``_``). Pages are rendered on the server with Jinja2, whose
autoescaping keeps every object key and message text: keys are user input. Every page has a
JSON twin under ``/_console/api/`` for scripts and tests. It reads through the same APIs a
client uses (Step Functions, S3, the records table), so what it shows is what they answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

from awsio import source_id

from ..plain import to_json
from .history import definition_graph, state_runs, timeline
from .pages import environment

PAGE_SIZE = 50
STATIC = Path(__file__).with_name("static")
STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
RECORD_STATUSES = ("SUCCEEDED", "REJECTED", "FAILED", "DELETED")


class Console:
    """A WSGI app over a running local stack and its state folder."""

    def __init__(
        self,
        stack: Any,
        state: Any,
        record: Callable[[str], dict[str, Any] | None],
        record_page: Callable[[str | None, int, int], list[dict[str, Any]]],
    ) -> None:
        self.stack = stack
        self.state = state
        self.record = record
        self.record_page = record_page
        self._keys_of: Any = None
        self._key_map: dict[str, str | None] = {}
        self.pages = environment()

    # --- what the pages show ------------------------------------------------------------------
    def executions(self, status: str = "", query: str = "", token: str = "", limit: int = PAGE_SIZE) -> dict[str, Any]:
        """Newest first, filtered by status and by a part of the object key; a page and the next token.

        Without a key search the page comes from ListExecutions, which pages on the server; a
        key search reads the execution index (one line per run), never the histories.
        """
        sfn = self.stack.client("stepfunctions")
        keys = self._keys()
        if query:
            found = [(e, self._key_of(e, keys)) for e in self._all(sfn, status)]
            found = [(e, key) for e, key in found if query.lower() in (key or "").lower()]
            start = int(token or 0)
            following = str(start + limit) if start + limit < len(found) else None
            return {"executions": [self._row(e, key) for e, key in found[start : start + limit]], "next": following}
        page = sfn.list_executions(
            stateMachineArn=self.stack.state_machine_arn,
            maxResults=limit,
            **({"statusFilter": status} if status else {}),
            **({"nextToken": token} if token else {}),
        )
        rows = [self._row(e, self._key_of(e, keys)) for e in page["executions"]]
        return {"executions": rows, "next": page.get("nextToken")}

    def _keys(self) -> dict[str, str | None]:
        """Execution ARN -> object key, from the index; built again only when the index changed."""
        index = self.state.execution_index()
        if self._keys_of is not index:
            self._keys_of, self._key_map = index, {e["executionArn"]: e.get("key") for e in index}
        return self._key_map

    def _all(self, sfn: Any, status: str) -> Iterable[dict[str, Any]]:
        kwargs = {"stateMachineArn": self.stack.state_machine_arn, **({"statusFilter": status} if status else {})}
        for page in sfn.get_paginator("list_executions").paginate(**kwargs):
            yield from page["executions"]

    def _key_of(self, listed: dict[str, Any], keys: dict[str, str | None]) -> str | None:
        """The object key of a listed run: from the index, or for a run not saved yet, its input."""
        if listed["executionArn"] in keys:
            return keys[listed["executionArn"]]
        described = self.stack.client("stepfunctions").describe_execution(executionArn=listed["executionArn"])
        return ((json.loads(described.get("input") or "{}").get("detail") or {}).get("object") or {}).get("key")

    def _row(self, listed: dict[str, Any], key: str | None) -> dict[str, Any]:
        """A listed run as the page shows it: plain values, its object key, its duration."""
        row = to_json(listed)
        row["key"] = key
        start, stop = listed["startDate"], listed.get("stopDate")
        row["seconds"] = (stop - start).total_seconds() if stop else None
        return row

    def execution(self, name: str) -> dict[str, Any]:
        """One run: its description, every event, each state's outcome and attempts, the record and its files."""
        sfn = self.stack.client("stepfunctions")
        arn = self.stack.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
        described = to_json(sfn.describe_execution(executionArn=arn))
        events = []
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
            events += to_json(page["events"])
        definition = json.loads(sfn.describe_state_machine_for_execution(executionArn=arn)["definition"])
        execution_input = json.loads(described.get("input") or "{}")
        detail = execution_input.get("detail") or {}
        bucket, key = (detail.get("bucket") or {}).get("name"), (detail.get("object") or {}).get("key")
        record = self.record(source_id(bucket, key)) if bucket and key is not None else None
        runs = state_runs(definition, events, described["status"])
        return {
            "execution": described,
            "input": execution_input,
            "key": key,
            "bucket": bucket,
            "states": [asdict(run) for run in runs],
            "graph": definition_graph(definition, runs),
            "timeline": timeline(runs, events),
            "events": events,
            "record": record,
            "thumbnail_bucket": self.stack.thumbnail_bucket,
        }

    def records(self, status: str = "", offset: int = 0, limit: int = PAGE_SIZE) -> dict[str, Any]:
        """A page of the records table, by source, optionally of one status; read from the store."""
        found = self.record_page(status or None, offset, limit + 1)
        following = offset + limit if len(found) > limit else None
        return {"records": found[:limit], "next": following}

    # --- what the buttons do ------------------------------------------------------------------
    def redrive(self, names: list[str]) -> list[dict[str, str]]:
        """Redrive each run, or replay it as a linked new run where AWS would not redrive it."""
        from .. import aws

        deployed = self.stack.deployed()
        sfn = deployed.client("stepfunctions")
        lookup = aws.record_lookup(deployed, deployed.client("dynamodb"))
        prefix = self.stack.state_machine_arn.replace(":stateMachine:", ":execution:")
        outcomes = []
        for name in names:
            done = aws.replay(deployed, sfn, f"{prefix}:{name}", lookup)
            now = done.arn.rsplit(":", 1)[-1]
            outcomes.append(
                {"name": name, "action": done.action, "now": now, "message": f"{name}: {done.action}, {done.reason}"}
            )
        return outcomes

    def upload(self, files: Iterable[tuple[str, bytes]]) -> list[str]:
        """Put each file in the uploads bucket under its name: the pipeline runs as for any upload."""
        s3 = self.stack.client("s3")
        names = []
        for name, data in files:
            key = name.replace("\\", "/").rsplit("/", 1)[-1] or "upload"
            s3.put_object(Bucket=self.stack.upload_bucket, Key=key, Body=data)
            names.append(key)
        return names

    @staticmethod
    def _back(where: str, message: str) -> Any:
        """303 to a page, with what happened in its query string (the page shows it)."""
        from werkzeug.utils import redirect

        separator = "&" if "?" in where else "?"
        return redirect(f"/_console/{where}{separator}done={quote(message)}", code=303)

    # --- WSGI ----------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from botocore.exceptions import ClientError
        from werkzeug.exceptions import Forbidden, HTTPException, NotFound
        from werkzeug.wrappers import Request, Response

        request = Request(environ)
        path = request.path.removeprefix("/_console").strip("/")
        try:
            if request.method == "POST":
                origin = request.headers.get("Origin")
                if origin is not None and origin != f"{request.scheme}://{request.host}":
                    raise Forbidden("the console takes actions only from its own pages")
                response = self._post(path, request)
            else:
                response = self._get(path, request)
        except HTTPException as exc:
            response = exc.get_response(environ)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = 404 if code in ("ExecutionDoesNotExist", "NoSuchKey") else 502
            response = Response(f"{code}: {exc}", status=status, content_type="text/plain; charset=utf-8")
        except LookupError as exc:
            response = Response(str(exc), status=404, content_type="text/plain; charset=utf-8")
        if response is None:
            response = NotFound().get_response(environ)
        return response(environ, start_response)  # type: ignore[no-any-return]

    def _get(self, path: str, request: Any) -> Any:
        from werkzeug.wrappers import Response

        args, done = request.args, request.args.get("done")
        if path in ("", "executions", "api/executions"):
            status = args.get("status", "") if args.get("status", "") in STATUSES else ""
            found = self.executions(status, args.get("q", ""), args.get("token", ""))
            if path == "api/executions":
                return Response(json.dumps(found), content_type="application/json")
            template = self.pages.get_template("executions.html")
            page = template.render(**found, status=status, query=args.get("q", ""), statuses=STATUSES, done=done)
            return Response(page, content_type="text/html; charset=utf-8")
        if path in ("records", "api/records"):
            status = args.get("status", "") if args.get("status", "") in RECORD_STATUSES else ""
            found = self.records(status, int(args.get("offset", "0") or 0))
            if path == "api/records":
                return Response(json.dumps(found), content_type="application/json")
            page = self.pages.get_template("records.html").render(
                **found,
                status=status,
                statuses=RECORD_STATUSES,
                thumbnail_bucket=self.stack.thumbnail_bucket,
                done=done,
            )
            return Response(page, content_type="text/html; charset=utf-8")
        if path.startswith("api/executions/"):
            view = self.execution(path.removeprefix("api/executions/"))
            return Response(json.dumps(view), content_type="application/json")
        if path.startswith("executions/"):
            view = self.execution(path.removeprefix("executions/"))
            page = self.pages.get_template("execution.html").render(**view, done=done)
            return Response(page, content_type="text/html; charset=utf-8")
        if path.startswith("objects/"):
            return self._object(path.removeprefix("objects/"))
        if path.startswith("static/"):
            return self._static(path.removeprefix("static/"))
        return None

    @staticmethod
    def _static(name: str) -> Any:
        """The console's script and the vendored layout library (with its licence), from the package."""
        from werkzeug.exceptions import NotFound
        from werkzeug.wrappers import Response

        if name not in {p.name for p in STATIC.iterdir()}:  # only files that are there: no path tricks
            raise NotFound()
        kind = {".js": "text/javascript", ".txt": "text/plain"}.get(Path(name).suffix, "application/octet-stream")
        return Response((STATIC / name).read_bytes(), content_type=f"{kind}; charset=utf-8")

    def _post(self, path: str, request: Any) -> Any:
        if path.startswith("executions/") and path.endswith("/redrive"):
            outcome = self.redrive([path.removeprefix("executions/").removesuffix("/redrive")])[0]
            return self._back(f"executions/{quote(outcome['now'])}", outcome["message"])
        if path == "redrive-failed":
            failed = [e["name"] for e in self.executions("FAILED", limit=1000)["executions"]]
            outcomes = self.redrive(failed)
            message = f"{len(outcomes)} failed run(s): " + "; ".join(o["message"] for o in outcomes)
            return self._back("executions?status=FAILED", message if outcomes else "No failed runs.")
        if path == "upload":
            names = self.upload((f.filename or "upload", f.read()) for f in request.files.getlist("file"))
            return self._back("executions", f"Uploaded {len(names)}: " + ", ".join(names))
        return None

    def _object(self, path: str) -> Any:
        """An original or a thumbnail, from the local S3, for the execution page's images."""
        from botocore.exceptions import ClientError
        from werkzeug.exceptions import NotFound
        from werkzeug.wrappers import Response

        bucket, _, key = path.partition("/")
        if bucket not in (self.stack.upload_bucket, self.stack.thumbnail_bucket):
            raise NotFound()
        try:
            found = self.stack.client("s3").get_object(Bucket=bucket, Key=key)
        except ClientError:
            raise NotFound() from None
        content_type = found.get("ContentType", "application/octet-stream")
        headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}
        return Response(found["Body"].read(), content_type=content_type, headers=headers)

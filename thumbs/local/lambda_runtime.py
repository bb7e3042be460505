"""A local Lambda runtime: warm worker processes per function, with Lambda's limits and errors.

Each function runs in its own worker processes with only its own environment (as in
Lambda, one function never sees another's variables). A worker imports the handler once
and stays warm. An invocation that outlives the function's Timeout is killed and reported
as ``Sandbox.Timedout``; a worker whose peak resident memory passes MemorySize is killed
and reported as ``Runtime.OutOfMemory``. Either way only the worker dies, never the runner.
Invocations run concurrently, so Map iterations and separate uploads use every core.

Concurrency is limited as Lambda limits it. A function with ``ReservedConcurrentExecutions``
runs at most that many invocations at once; the others share the account's limit (``thumbs
run --concurrency N``) minus what is reserved. An invocation past its limit is not queued: it
is refused at once with Lambda's throttle error (``Throttled``), as on AWS, and the caller
retries it, Step Functions by the task's retrier, an asynchronous event by Lambda's own queue.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

WORKER_SCRIPT = Path(__file__).resolve().parent / "lambda_worker.py"
POLL_SECONDS = 0.1  # how often a running invocation's peak memory is checked (and again at its end)
# Past this multiple of MemorySize the kernel stops a runaway allocation before the poll does.
ADDRESS_SPACE_BACKSTOP = 4


@dataclass(frozen=True)
class FunctionSpec:
    """What the template says about one function."""

    name: str
    handler: str
    environment: dict[str, str]
    timeout_seconds: int
    memory_mb: int
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions; None shares the account's pool
    dead_letter_arn: str | None = None  # DeadLetterConfig: where an asynchronous event goes when its attempts fail


class Throttled(Exception):
    """Lambda's TooManyRequestsException: the function or the account is at its concurrency limit."""

    def __init__(self, name: str, reason: str) -> None:
        self.reason = reason  # ReservedFunctionConcurrentInvocationLimitExceeded | ConcurrentInvocationLimitExceeded
        super().__init__(f"Rate Exceeded. {name}: {reason}")


THROTTLE_ERROR = "Lambda.TooManyRequestsException"  # the error Step Functions reports for a throttled Invoke
# Lambda keeps a throttled asynchronous event and retries it, without counting an attempt, for up to 6 hours.
ASYNC_THROTTLE_MAX_AGE_SECONDS = 6 * 3600
ASYNC_THROTTLE_MAX_BACKOFF_SECONDS = 30


@dataclass
class FaultSwitch:
    """Injected failures per function: ``{"resize": ["transient", "transient"]}`` fails the next two.

    Kinds: ``transient`` (our TransientError), ``throttle`` (Lambda.TooManyRequestsException),
    ``timeout`` (Sandbox.Timedout) and ``oom`` (Runtime.OutOfMemory), each shaped as Lambda
    reports it to Step Functions. ``@SKIP`` lets that many invocations through first: with
    three sizes, ``resize=transient:10@1`` lets one Map iteration succeed and fails the other
    two past their retries, a run that fails halfway.
    """

    pending: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    KINDS = ("transient", "throttle", "timeout", "oom")
    PASS = "pass"  # an invocation let through untouched (``@SKIP``)

    @classmethod
    def parse(cls, specs: list[str]) -> FaultSwitch:
        """``["resize=transient:2", "record=throttle", "resize=transient:10@1"]`` (count defaults to 1)."""
        switch = cls()
        for spec in specs:
            try:
                function, rest = spec.split("=", 1)
                rest, _, skip = rest.partition("@")
                kind, _, count = rest.partition(":")
                times, skipped = int(count or 1), int(skip or 0)
                if times < 1 or skipped < 0:
                    raise ValueError
            except ValueError:
                raise ValueError(
                    f"fault {spec!r}: expected FUNCTION=KIND[:COUNT][@SKIP], e.g. resize=transient:2"
                ) from None
            if kind not in cls.KINDS:
                raise ValueError(f"fault {spec!r}: kind must be one of {', '.join(cls.KINDS)}")
            switch.pending.setdefault(function, []).extend([cls.PASS] * skipped + [kind] * times)
        return switch

    def take(self, *names: str) -> str | None:
        """The next fault for a function known by any of ``names`` (its name, or its handler's package)."""
        with self.lock:
            for name in names:
                if self.pending.get(name):
                    kind = self.pending[name].pop(0)
                    return None if kind == self.PASS else kind
            return None


def lambda_error(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def _error_type(answer: bytes) -> str:
    try:
        return str(json.loads(answer).get("errorType") or "Unhandled")
    except (ValueError, AttributeError):
        return "TooManyRequestsException" if not answer else "Unhandled"


DeadLetter = Callable[[str, bytes, str], None]  # (queue ARN, the event, the last error's type)


def _fault_error(kind: str, spec: FunctionSpec, request_id: str) -> bytes:
    if kind == "transient":
        return lambda_error("TransientError", "injected transient fault (local fault switch)")
    if kind == "throttle":
        return lambda_error(THROTTLE_ERROR, "Rate Exceeded. (injected by the local fault switch)")
    if kind == "timeout":
        return _timeout_error(spec, request_id)
    return _oom_error(request_id)


def _timeout_error(spec: FunctionSpec, request_id: str) -> bytes:
    return lambda_error(
        "Sandbox.Timedout", f"RequestId: {request_id} Error: Task timed out after {spec.timeout_seconds:.2f} seconds"
    )


def _oom_error(request_id: str) -> bytes:
    return lambda_error(
        "Runtime.OutOfMemory", f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
    )


class _Zygote:
    """The process that forks workers (``lambda_worker.zygote``): started on first use, again if it dies."""

    def __init__(self, environment: dict[str, str], log_path: Path) -> None:
        self.environment = environment  # what every function's environment has in common
        self.log_path = log_path
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: socket.socket | None = None
        # one request at a time, off the caller's thread: warm_up returns while the zygote still imports
        self._requests = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lambda-zygote")

    def spawn(self, request: dict[str, Any], fds: list[int]) -> Future[int]:
        """Fork a worker with ``fds`` (stdin, reply, log; the zygote keeps none of them): its pid, later."""
        return self._requests.submit(self._spawn, json.dumps(request).encode(), fds)

    def _spawn(self, message: bytes, fds: list[int]) -> int:
        try:
            with self._lock:
                for _ in range(2):  # a zygote that died (killed, or its machine short of memory) is started again
                    if self._process is None or self._process.poll() is not None:
                        self._start()
                    assert self._channel is not None
                    try:
                        socket.send_fds(self._channel, [message], fds)
                    except OSError:
                        self._stop()  # it died before it took the request: a new one takes it
                        continue
                    try:
                        answer = self._channel.recv(4096)
                    except OSError:
                        answer = b""
                    if answer:
                        return int(json.loads(answer)["pid"])
                    self._stop()  # it took the request and died: asking again could fork the worker twice
                    break
                raise RuntimeError(f"the local Lambda zygote does not fork workers; see {self.log_path}")
        finally:
            for fd in fds:
                os.close(fd)

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with self.log_path.open("ab") as log:
            # -P: the worker script's folder is not on sys.path; a fork puts the function's code there
            self._process = subprocess.Popen(
                [sys.executable, "-P", str(WORKER_SCRIPT), "--zygote", str(theirs.fileno())],
                env=self.environment, stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(theirs.fileno(),),
            )  # fmt: skip
        theirs.close()
        self._channel = ours

    def _stop(self) -> None:
        if self._channel is not None:
            self._channel.close()  # the zygote reads the end of its channel and exits
            self._channel = None
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def close(self) -> None:
        self._requests.shutdown(wait=True)
        with self._lock:
            self._stop()


class _Worker:
    def __init__(self, spec: FunctionSpec, request: dict[str, Any], log: IO[bytes], zygote: _Zygote) -> None:
        self.spec = spec
        stdin_read, stdin_write = os.pipe()
        reply_read, reply_write = os.pipe()
        backstop = spec.memory_mb * ADDRESS_SPACE_BACKSTOP * 1024 * 1024 + 2 * 1024**3
        self._pid = zygote.spawn({**request, "backstop": backstop}, [stdin_read, reply_write, os.dup(log.fileno())])
        self.stdin = os.fdopen(stdin_write, "wb")
        self.replies = os.fdopen(reply_read, "rb")
        self._buffer = b""
        self.ready = False  # until its "ready" line: the handler's module is imported
        self.generation = 0  # the runtime's restart count for this function when it started

    @property
    def pid(self) -> int | None:
        """The worker's pid once the zygote has forked it (None until then, or if it could not)."""
        if not self._pid.done() or self._pid.exception() is not None:
            return None
        return self._pid.result()

    def wait_ready(self, timeout: float = 60) -> None:
        """Block until the worker has imported its handler; RuntimeError if it does not start."""
        if self.ready:
            return
        status, reply = self.read_reply(time.monotonic() + timeout, self.spec.memory_mb)
        if status != "ok" or not (reply or {}).get("ready"):
            self.kill()
            raise RuntimeError(f"the local worker for {self.spec.name} did not start ({status})")
        self.ready = True

    def alive(self) -> bool:
        if not self._pid.done():
            return True  # being forked
        pid = self.pid
        return pid is not None and _running(pid)

    def peak_memory_mb(self) -> float:
        if self.pid is None:
            return 0.0
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except (FileNotFoundError, ProcessLookupError):
            pass
        return 0.0

    def read_reply(self, deadline: float, memory_mb: int) -> tuple[str, dict[str, Any] | None]:
        """('ok', reply) | ('timeout', None) | ('oom', None) | ('died', None)."""
        while True:
            if b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                # VmHWM is the kernel's exact peak: an overrun between polls is still caught here.
                return ("oom", None) if self.peak_memory_mb() > memory_mb else ("ok", json.loads(line))
            if self.peak_memory_mb() > memory_mb:
                return "oom", None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout", None
            ready, _, _ = select.select([self.replies], [], [], min(POLL_SECONDS, remaining))
            if ready:
                chunk = os.read(self.replies.fileno(), 1 << 16)
                if not chunk:
                    return ("oom" if self.peak_memory_mb() > memory_mb else "died"), None
                self._buffer += chunk

    def send(self, request: dict[str, Any]) -> None:
        self.stdin.write(json.dumps(request).encode() + b"\n")
        self.stdin.flush()

    def kill(self) -> None:
        """Stop the worker and wait until it is gone (the zygote, its parent, reaps it)."""
        try:
            pid = self._pid.result(timeout=60)
        except Exception:  # noqa: BLE001 - never forked: nothing runs
            pid = None
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _running(pid) and time.monotonic() < deadline:
                time.sleep(0.01)
        for pipe in (self.stdin, self.replies):
            with contextlib.suppress(OSError):  # a request left unread in a dead worker's stdin
                pipe.close()


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs: a worker that exited is reaped at once, so its pid is gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalLambdaRuntime:
    """Runs the template's functions from ``code_dir``; thread-safe, any number of callers at once."""

    def __init__(
        self,
        functions: dict[str, FunctionSpec],
        code_dir: Path,
        base_environment: dict[str, str],
        log_dir: Path,
        faults: FaultSwitch | None = None,
        max_workers_per_function: int | None = None,
        account_concurrency: int | None = None,
        dead_letter: DeadLetter | None = None,
    ) -> None:
        """``account_concurrency``: the account's limit (None: no limit but the machine).

        ``dead_letter(arn, payload, error)`` receives an asynchronous event whose attempts all
        failed, for a function with a ``dead_letter_arn``, as Lambda sends it to the queue.

        ValueError when the functions' reserved concurrency leaves nothing of it for the others.
        """
        self.functions = functions
        self.code_dir = code_dir
        self.base_environment = base_environment
        self.log_dir = log_dir
        self.faults = faults or FaultSwitch()
        self._idle: dict[str, list[_Worker]] = {name: [] for name in functions}
        self._generation: dict[str, int] = {name: 0 for name in functions}  # bumped by restart()
        limit = max_workers_per_function or max(2, (os.cpu_count() or 2) * 2)
        self._slots = {name: threading.BoundedSemaphore(limit) for name in functions}
        # The state machine's tasks wait here, before their Invoke request, not inside the server:
        # hundreds of queued invocations would otherwise hold hundreds of open connections and
        # server threads (a backfill starts 400 pipelines at once), and the server drops some.
        self._admission = {name: threading.BoundedSemaphore(limit) for name in functions}
        self._lock = threading.Lock()
        self._async: list[threading.Thread] = []
        self.invocations: dict[str, int] = {name: 0 for name in functions}
        # The highest resident memory any worker of each function reached (Lambda's "Max Memory Used").
        self.peak_memory_mb: dict[str, float] = {name: 0.0 for name in functions}
        self.account_concurrency = account_concurrency
        self.dead_letter = dead_letter
        self._running: dict[str, int] = {name: 0 for name in functions}  # invocations in flight
        self.throttles: dict[str, int] = {name: 0 for name in functions}
        self.peak_concurrency = 0  # the most invocations in flight at once, over all functions
        self._check_reservations()
        log_dir.mkdir(parents=True, exist_ok=True)
        self._zygote = _Zygote(base_environment, log_dir / "zygote.log")

    def environment_for(self, spec: FunctionSpec) -> dict[str, str]:
        return {
            **self.base_environment,
            **spec.environment,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_seconds),
            # The function's code is importable from its root, as from /var/task on Lambda.
            "LAMBDA_TASK_ROOT": str(self.code_dir),
            "PYTHONPATH": str(self.code_dir),
        }

    def _start_worker(self, spec: FunctionSpec) -> _Worker:
        request = {"handler": spec.handler, "environment": self.environment_for(spec), "code_dir": str(self.code_dir)}
        with (self.log_dir / f"{spec.name}.log").open("ab") as log:
            worker = _Worker(spec, request, log, self._zygote)
        worker.generation = self._generation[spec.name]
        return worker

    def restart(self, name: str, spec: FunctionSpec | None = None) -> None:
        """New workers for ``name`` (with ``spec``'s configuration when given): the next invocation runs new code.

        Idle workers stop now and as many new ones (at least one) start importing at once; a worker
        busy with an invocation finishes it on the old code and then stops instead of going back idle.
        """
        with self._lock:
            if spec is not None:
                self.functions[name] = spec
            self._generation[name] += 1
            stale, self._idle[name] = self._idle[name], []
        for worker in stale:
            worker.kill()
        fresh = [self._start_worker(self.functions[name]) for _ in range(max(1, len(stale)))]  # as many as were warm
        with self._lock:
            self._idle[name].extend(fresh)

    def _ready(self, worker: _Worker) -> _Worker:
        try:
            worker.wait_ready()
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; see {self.log_dir}") from None
        return worker

    def warm_up(self) -> None:
        """Start one worker per function now, without waiting for it.

        Each imports its handler in its own process while this one deploys the stack, so the
        first upload finds warm workers instead of paying three cold imports one after another.
        """
        for name, spec in self.functions.items():
            worker = self._start_worker(spec)
            with self._lock:
                self._idle[name].append(worker)

    def admitted(self, name: str) -> Any:
        """Hold while a state machine task invokes ``name``: at most as many as it has workers.

        Under an account limit nothing waits here: every Invoke meets the limit at once and a
        refused one is throttled, as on AWS, so the throttle retrier is what a burst exercises.
        """
        if self.account_concurrency is not None:
            return contextlib.nullcontext()
        return self._admission.get(name) or contextlib.nullcontext()

    def _check_reservations(self) -> None:
        reserved = {n: s.reserved_concurrency for n, s in self.functions.items() if s.reserved_concurrency is not None}
        if self.account_concurrency is not None and sum(reserved.values()) >= self.account_concurrency:
            raise ValueError(
                f"the template reserves {sum(reserved.values())} concurrent executions "
                f"({', '.join(f'{n}: {r}' for n, r in sorted(reserved.items()))}), which leaves nothing of an "
                f"account concurrency of {self.account_concurrency} for the other functions"
            )

    def _enter(self, name: str) -> None:
        """Count one invocation of ``name`` in flight, or raise Throttled past its limit (hold the lock)."""
        reserved = self.functions[name].reserved_concurrency
        if reserved is not None:
            if self._running[name] >= reserved:
                raise Throttled(name, "ReservedFunctionConcurrentInvocationLimitExceeded")
        elif self.account_concurrency is not None:
            unreserved = [n for n, s in self.functions.items() if s.reserved_concurrency is None]
            pool = self.account_concurrency - sum(s.reserved_concurrency or 0 for s in self.functions.values())
            if sum(self._running[n] for n in unreserved) >= pool:
                raise Throttled(name, "ConcurrentInvocationLimitExceeded")
        self._running[name] += 1
        self.peak_concurrency = max(self.peak_concurrency, sum(self._running.values()))

    def invoke(self, name: str, payload: bytes) -> tuple[bytes, str | None]:
        """Synchronous Invoke: (payload, FunctionError) exactly as Lambda returns them.

        Raises Throttled when ``name`` is at its concurrency limit (Lambda answers 429; no attempt is counted).
        """
        spec = self.functions[name]
        request_id = str(uuid.uuid4())
        with self._lock:
            try:
                self._enter(name)
            except Throttled:
                self.throttles[name] += 1
                raise
            self.invocations[name] += 1
        try:
            fault = self.faults.take(name, spec.handler.split(".")[0])  # "resize" names the resize function
            if fault:
                return _fault_error(fault, spec, request_id), "Unhandled"
            return self._run(name, spec, payload, request_id)
        finally:
            with self._lock:
                self._running[name] -= 1

    def _run(self, name: str, spec: FunctionSpec, payload: bytes, request_id: str) -> tuple[bytes, str | None]:
        with self._slots[name]:
            with self._lock:
                worker = self._idle[name].pop() if self._idle[name] else None
            if worker is None or not worker.alive():
                worker = self._start_worker(spec)
            self._ready(worker)
            started = time.monotonic()
            worker.send(
                {"payload": payload.decode(), "request_id": request_id, "deadline": time.time() + spec.timeout_seconds}
            )
            status, reply = worker.read_reply(started + spec.timeout_seconds, spec.memory_mb)
            with self._lock:
                self.peak_memory_mb[name] = max(self.peak_memory_mb[name], worker.peak_memory_mb())
            if status == "ok" and reply is not None and not reply.get("fatal"):
                with self._lock:
                    current = worker.generation == self._generation[name]
                    if current:
                        self._idle[name].append(worker)
                if not current:
                    worker.kill()  # restarted while it ran: its code is out of date
                return reply["payload"].encode(), (None if reply["ok"] else "Unhandled")
            worker.kill()
            if status == "timeout":
                return _timeout_error(spec, request_id), "Unhandled"
            if status in ("oom", "died") or (reply or {}).get("fatal"):
                return _oom_error(request_id), "Unhandled"
            return lambda_error("Runtime.ExitError", f"RequestId: {request_id} Error: Runtime exited"), "Unhandled"

    def invoke_async(self, name: str, payload: bytes, retries: int = 2) -> None:
        """Event invocation: returns at once; retried twice on error, as Lambda retries async events.

        A throttled event waits and tries again without using an attempt, as Lambda's event
        queue does for up to six hours.
        """

        def run() -> None:
            attempts, waited, backoff = 0, 0.0, 1.0
            answer, error = b"", None
            while attempts <= retries:
                try:
                    answer, error = self.invoke(name, payload)
                except Throttled:
                    if waited >= ASYNC_THROTTLE_MAX_AGE_SECONDS:
                        break
                    time.sleep(backoff)
                    waited += backoff
                    backoff = min(backoff * 2, ASYNC_THROTTLE_MAX_BACKOFF_SECONDS)
                    continue
                except RuntimeError:  # a worker that would not start: Lambda retries that too
                    answer, error = lambda_error("Runtime.ExitError", "the worker did not start"), "Unhandled"
                attempts += 1
                if error is None:
                    return
            arn = self.functions[name].dead_letter_arn
            if arn and self.dead_letter is not None:
                self.dead_letter(arn, payload, _error_type(answer))

        thread = threading.Thread(target=run, name=f"async-{name}", daemon=True)
        with self._lock:
            thread.start()  # started under the lock: wait_for_async never sees it unstarted
            self._async = [t for t in self._async if t.is_alive()] + [thread]

    def wait_for_async(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = [t for t in self._async if t.is_alive()]
            if not pending or time.monotonic() > deadline:
                return
            pending[0].join(timeout=max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        with self._lock:
            workers = [w for idle in self._idle.values() for w in idle]
            for idle in self._idle.values():
                idle.clear()
        for worker in workers:
            worker.kill()
        self._zygote.close()

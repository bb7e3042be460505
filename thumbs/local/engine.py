"""The warm engine: moto, the SDK and Pillow imported once per user, then a fork per command.

A fresh ``thumbs run`` spends most of its start importing: moto's Step Functions interpreter
(which imports EC2 through Batch), its server, Flask, botocore and Pillow, about 3 s of CPU
before the stack deploys. None of it depends on the command. So the first command that starts
a local stack also starts this process, which imports all of that and waits on a Unix socket
in a folder only its user can open. Each later command connects, hands over its terminal
(stdin, stdout and stderr, as file descriptors), its arguments, folder and environment, and
the engine forks: the child becomes that command and runs it as the command would have run
itself. The command waits and leaves with the child's status; Ctrl-C reaches the child.

What is and is not shared:

- The engine imports third-party modules only. Every module of this project (``thumbs``,
  ``imaging``, ``awsio``) is dropped from the engine before it serves, so each command imports
  the project's code from disk as it is now: an edit is never run stale.
- The engine is keyed by what its imports depend on: the Python executable and flags, this
  file and ``moto_internals.py`` (whose ``preload`` it runs), the import path and when its
  site-packages folders last changed (an install or upgrade changes them), and the ``MOTO_``,
  ``AWS_``, ``BOTO``, and ``PYTHON`` environment variables. A command whose key differs starts
  an engine of its own; the old one exits when it has been idle for ``IDLE_SECONDS``.
- Nothing of one command reaches the next: each runs in its own fork, and the engine itself
  never starts a stack (no moto backend holds anything, no thread runs when it forks).

``THUMBS_ENGINE=0`` runs every command in its own process, as before; the tests do (a test
of the engine turns it on). ``thumbs engine`` says what runs, ``thumbs engine --stop`` stops it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from .lambda_worker import exited_children

IDLE_SECONDS = 900.0  # an engine nobody used for this long exits (a new one takes about 3 s to start)
START_SECONDS = 60.0  # how long a command waits for a new engine before it runs in its own process
OWN_PACKAGES = ("thumbs", "imaging", "awsio", "functions", "pipeline")
KEYED_ENVIRONMENT = ("MOTO_", "AWS_", "BOTO", "PYTHON")
# Imported by the engine before it serves. Our modules are imported too, for what they import,
# and dropped again before the first fork (see module docstring).
PRELOADED = (
    "thumbs.cli",
    "thumbs.local.commands",
    "thumbs.local.session",
    "thumbs.local.served",
    "thumbs.local.watch",
    "thumbs.console.app",
    "rich.progress",
    "PIL.Image",
    "requests",
)


def engine_dir() -> Path:
    """The user's private folder for engine sockets: ``$THUMBS_ENGINE_DIR``, or one under the runtime dir.

    The socket lets whoever opens it run commands as this user, so the folder must be this
    user's alone (0700); one that is not is refused rather than used.
    """
    explicit = os.environ.get("THUMBS_ENGINE_DIR")
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp")
    folder = Path(explicit) if explicit else base / f"thumbs-engine-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"{folder} must belong to this user alone (mode 0700) to hold the engine's socket")
    return folder


def engine_key() -> str:
    """What the engine's imports depend on, hashed: a command with another key needs another engine."""
    parts: list[Any] = [sys.executable, sys.version, repr(sys.flags)]
    for code in (Path(__file__), Path(__file__).with_name("moto_internals.py")):  # what runs in the engine itself
        info = code.stat()
        parts.append((info.st_mtime_ns, info.st_size))
    for entry in sys.path:  # an install, upgrade or removal changes its site-packages folder
        installed = entry.rstrip("/").endswith(("site-packages", "dist-packages"))
        try:
            parts.append((entry, Path(entry).stat().st_mtime_ns if installed else None))
        except OSError:
            parts.append((entry, "missing"))
    parts.extend(sorted((k, v) for k, v in os.environ.items() if k.startswith(KEYED_ENVIRONMENT)))
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def socket_path() -> Path:
    return engine_dir() / f"engine-{engine_key()}.sock"


def enabled() -> bool:
    return os.environ.get("THUMBS_ENGINE", "1") != "0"


# The command's side -------------------------------------------------------------------------------
def run_in_engine(argv: list[str]) -> int | None:
    """Run ``thumbs ARGV`` in a fork of the warm engine: its exit status, or None to run it here.

    None means no engine could be reached, started or given the command (a message says why);
    nothing ran, and the command then runs in this process, as with ``THUMBS_ENGINE=0``.
    """
    try:
        for descriptor in (0, 1, 2):  # handed over as they are: a closed one cannot be
            os.fstat(descriptor)
        path = socket_path()
        connection = _connect(path) or _start(path)
    except OSError as exc:
        print(f"thumbs: running without the warm engine: {exc}", file=sys.stderr)
        return None
    if connection is None:
        print(f"thumbs: the warm engine did not start (see {path.with_suffix('.log')}); running here", file=sys.stderr)
        return None
    with connection:
        return _hand_over(connection, argv)


def _connect(path: Path) -> socket.socket | None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        connection.close()
        return None
    return connection


def _start(path: Path) -> socket.socket | None:
    """Start an engine for ``path`` and wait until it answers (two commands may both start one: one wins)."""
    import subprocess

    serve = "import sys; from thumbs.local.engine import main; sys.exit(main(sys.argv[1:]))"
    with path.with_suffix(".log").open("ab") as log:  # the engine's copy stays open
        engine = subprocess.Popen(
            [sys.executable, "-c", serve, str(path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # not in the terminal's process group: Ctrl-C on a command spares it
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        connection = _connect(path)
        if connection is not None:
            return connection
        if engine.poll() not in (None, 0):  # it failed (0: another command's engine won the lock; wait for it)
            return None
        time.sleep(0.02)
    return None


def _hand_over(connection: socket.socket, argv: list[str]) -> int | None:
    """Send the command, forward the terminal's signals to its fork, and return the fork's status.

    None if the engine could not take the command (nothing ran, so it can run here instead).
    """
    request = {
        "argv": argv,
        "cwd": str(Path.cwd()),
        "env": dict(os.environ),
        "path": sys.path,
        "umask": _umask(),
        "encodings": [(s.encoding, s.errors) for s in (sys.stdin, sys.stdout, sys.stderr)],
    }
    reader = connection.makefile("rb")
    try:
        socket.send_fds(connection, [json.dumps(request).encode() + b"\n"], [0, 1, 2])
        first = reader.readline()  # the engine answers with the fork's pid once it has forked
    except OSError as exc:
        first, problem = b"", exc
    else:
        problem = None
    if not first:
        print(
            f"thumbs: the warm engine did not take the command ({problem or 'it closed'}); running here",
            file=sys.stderr,
        )
        return None
    pid = int(json.loads(first)["pid"])

    def forward(signum: int, frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signum)  # the fork leads its own group: as the terminal would, to all of it

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    last = reader.readline()
    if not last:
        print(f"thumbs: the warm engine went away while the command ran (process {pid})", file=sys.stderr)
        return 1
    return int(json.loads(last)["status"])


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# The engine's side --------------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    """``python -c ... PATH``: preload, then serve commands on the socket PATH until idle."""
    import fcntl

    path = Path(argv[0])
    lock = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)  # held for the engine's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another command started this engine first
    os.ftruncate(lock, 0)
    os.write(lock, str(os.getpid()).encode())  # for thumbs engine --stop
    started = time.monotonic()
    preload()
    _log(f"preloaded {len(sys.modules)} modules in {time.monotonic() - started:.2f} s")
    return Engine(path, lock=lock).serve()


def preload() -> None:
    """Import what a command needs of other people's code, then forget our own modules.

    Our modules are imported too, so that everything they import comes along; dropping them
    afterwards makes each command import the project as it is on disk now.
    """
    import importlib

    for name in PRELOADED:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a head start only (a file mid-edit): the command meets it itself
            _log(f"not preloaded: {name}: {exc!r}")
    try:
        from thumbs.local import moto_internals

        moto_internals.preload()
        _read_models(moto_internals.STACK_APIS)
    except Exception as exc:  # noqa: BLE001 - as above
        _log(f"warm-up left out: {exc!r}")
    forget_own_modules()


def _read_models(services: tuple[str, ...]) -> None:
    """Read the service models a stack's clients need into the default session's loader.

    The clients are made with fixed keys, a region and an endpoint and then dropped: no
    credentials are looked up, nothing is sent, and only the loader's cache is kept. The
    stack's own session reads through the same loader (``stack._sdk_session``).
    """
    import boto3

    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    for service in services:
        boto3.DEFAULT_SESSION.client(
            service, region_name="us-east-1", endpoint_url="http://127.0.0.1:9", aws_access_key_id="engine",
            aws_secret_access_key="engine",
        )  # fmt: skip


def forget_own_modules() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in OWN_PACKAGES:
            del sys.modules[name]


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} engine {os.getpid()}: {message}", file=sys.stderr, flush=True)


class Engine:
    """The serving loop: accept a command, fork it, report its status; exit when idle."""

    def __init__(self, path: Path, lock: int) -> None:
        self.path = path
        self.lock = lock  # the engine's lock file: a fork must not hold it (it would outlive the engine)
        self.idle_seconds = float(os.environ.get("THUMBS_ENGINE_IDLE", IDLE_SECONDS))
        self.children: dict[int, socket.socket] = {}  # fork's pid -> its command's connection
        self.stopping = False

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def serve(self) -> int:
        import selectors
        import threading

        if threading.active_count() != 1:  # a fork copies only the forking thread: a lock held elsewhere stays held
            _log(f"{threading.active_count()} threads after the preload; refusing to fork")
            return 1
        listener = self._listen()
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes the select through the pipe
        signal.signal(signal.SIGTERM, self._stop)  # thumbs engine --stop: no new commands, then exit
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ, "accept")
        selector.register(wake_read, selectors.EVENT_READ, "wake")
        identity = self.path.stat().st_ino
        last_used = time.monotonic()
        try:
            while True:
                for key, _ in selector.select(timeout=5.0):
                    if key.data == "accept":
                        connection, _ = listener.accept()
                        engine_only = [listener, selector, wake_read, wake_write, self.lock, *self.children.values()]
                        pid = self._fork(connection, engine_only)
                        if pid is not None:
                            self.children[pid] = connection
                            selector.register(connection, selectors.EVENT_READ, pid)
                    elif key.data == "wake":
                        try:
                            while os.read(wake_read, 512):
                                pass
                        except BlockingIOError:
                            pass
                        for pid, status in self._reaped():
                            connection = self.children.pop(pid)
                            with contextlib.suppress(KeyError):  # not if its command went away first
                                selector.unregister(connection)
                            _send_line(connection, {"status": status})
                            connection.close()
                    else:  # a command's connection is readable only when the command went away
                        selector.unregister(key.fileobj)  # once: its fork is reaped as any other
                        self._abandoned(key.data)
                if self.children:
                    last_used = time.monotonic()
                elif self._done(last_used, identity):
                    return 0
                if self.stopping and listener.fileno() != -1:  # a command from now on starts a new engine
                    selector.unregister(listener)
                    listener.close()
                    if self._still_ours(identity):
                        self.path.unlink()
        finally:
            if self._still_ours(identity):
                self.path.unlink(missing_ok=True)
            listener.close()

    def _listen(self) -> socket.socket:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        fresh = self.path.with_suffix(f".{os.getpid()}.tmp")
        fresh.unlink(missing_ok=True)
        listener.bind(str(fresh))
        listener.listen(16)
        fresh.replace(self.path)  # a command never sees a bound socket that does not listen yet
        _log(f"serving on {self.path}")
        return listener

    def _done(self, last_used: float, identity: int) -> bool:
        """Nothing runs, and: asked to stop, idle too long, or the socket was removed or taken by another."""
        return self.stopping or time.monotonic() - last_used > self.idle_seconds or not self._still_ours(identity)

    def _still_ours(self, identity: int) -> bool:
        try:
            return self.path.stat().st_ino == identity
        except FileNotFoundError:
            return False

    def _fork(self, connection: socket.socket, engine_only: list[Any]) -> int | None:
        """Fork the command on ``connection``; the fork first closes what is the engine's alone."""
        connection.settimeout(10)
        try:
            request, fds = _receive(connection)
        except (OSError, ValueError) as exc:
            _log(f"a bad request: {exc}")
            connection.close()
            return None
        connection.settimeout(None)
        pid = os.fork()
        if pid == 0:
            try:
                for held in engine_only:  # the socket, selector, wake-up pipe, lock, other commands
                    if isinstance(held, int):
                        os.close(held)
                    else:
                        held.close()
                status = _become(request, fds)
            except BaseException:  # noqa: BLE001 (the fork must never return into the engine's loop)
                import traceback

                traceback.print_exc()
                status = 1
            os._exit(status)
        for descriptor in fds:
            os.close(descriptor)
        _send_line(connection, {"pid": pid})
        _log(f"forked {pid}: thumbs {' '.join(request['argv'])}")
        return pid

    def _reaped(self) -> list[tuple[int, int]]:
        """(pid, exit status) of each command's fork that ended; a status of 128 + N for signal N, as a shell says."""
        done = []
        for pid, status in exited_children():
            code = os.waitstatus_to_exitcode(status)
            done.append((pid, code if code >= 0 else 128 - code))
        return [(pid, status) for pid, status in done if pid in self.children]

    @staticmethod
    def _abandoned(pid: int) -> None:
        """The command is gone (its terminal closed, or it was killed): hang up on its fork, as a terminal would.

        A command sends nothing after its request, so its end of the connection turns readable
        only when it closes.
        """
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGHUP)


def _send_line(connection: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        connection.sendall(json.dumps(message).encode() + b"\n")


def _receive(connection: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
    while not data.endswith(b"\n"):
        more = connection.recv(1 << 20)
        if not more:
            raise ValueError("the request ended early")
        data += more
    if len(fds) != 3:
        for descriptor in fds:
            os.close(descriptor)
        raise ValueError(f"expected 3 file descriptors, got {len(fds)}")
    return json.loads(data), list(fds)


def _become(request: dict[str, Any], fds: list[int]) -> int:
    """In the fork: take the command's terminal, folder and environment, then run it as ``thumbs`` would."""
    import atexit
    import threading

    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setpgid(0, 0)
    for target, descriptor in enumerate(fds):
        os.dup2(descriptor, target)
        os.close(descriptor)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.umask(request["umask"])
    sys.path[:] = request["path"]
    sys.argv = ["thumbs", *request["argv"]]
    (in_enc, in_err), (out_enc, out_err), (err_enc, err_err) = request["encodings"]
    sys.stdin = open(0, encoding=in_enc, errors=in_err, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding=out_enc, errors=out_err, closefd=False, buffering=-1)  # noqa: SIM115
    sys.stdout.reconfigure(line_buffering=os.isatty(1))
    sys.stderr = open(2, "w", encoding=err_enc, errors=err_err, closefd=False, buffering=1)  # noqa: SIM115
    forget_own_modules()  # the engine's own module included: the command imports the project from disk
    from thumbs.cli import main as thumbs

    try:
        status = thumbs(request["argv"])
    except SystemExit as stop:
        status = _exit_status(stop.code)
    except KeyboardInterrupt:
        status = 130
    # What the interpreter does at exit, in its order: threading's exit hooks (an idle thread
    # pool's workers are told to stop there), then a join of every non-daemon thread, then atexit.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):
            stream.flush()
    return status


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def engines(folder: Path | None = None) -> list[dict[str, Any]]:
    """This user's engines: socket, process, and whether this command's key would use it."""
    folder = folder or engine_dir()
    current = socket_path()
    found = []
    for lock in sorted(folder.glob("engine-*.lock")):
        if not _held(lock):
            continue  # an engine that exited leaves its lock file: nothing runs there
        try:
            pid = int(lock.read_text())
        except (OSError, ValueError):
            continue
        sock = lock.with_suffix(".sock")
        found.append({"pid": pid, "socket": str(sock), "current": sock == current})
    return found


def _held(lock: Path) -> bool:
    """Whether an engine holds ``lock`` (the kernel drops the lock when its process ends, however it ends)."""
    import fcntl

    try:
        descriptor = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def cmd_engine(args: Any, out: Any) -> int:
    """``thumbs engine``: list this user's warm engines; ``--stop``: stop them (commands running finish first)."""
    found = engines()
    if not found:
        out.print("No warm engine runs. The next thumbs run (replay, backfill, verify) starts one.")
        return 0
    for engine in found:
        mark = "this Python and install" if engine["current"] else "another Python, install or MOTO_/AWS_ setting"
        out.print(f"engine {engine['pid']}: {engine['socket']} ({mark})")
        if args.stop:
            with contextlib.suppress(OSError):
                os.kill(engine["pid"], signal.SIGTERM)
    if args.stop:
        out.print(f"Stopped {len(found)} engine(s); a command still running in one finishes first.")
    return 0

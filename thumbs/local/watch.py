"""``thumbs serve --watch``: code and stack changes reach the running stack without a restart.

- A changed file under ``functions/`` restarts the workers of each function that runs it:
  its own handler package, or a shared package (``imaging``, ``awsio``) its handler imports.
  The next invocation runs the new code; one in flight finishes on the old.
- A changed CDK app (``app.py``, ``pipeline/``, ``cdk.json``) is synthesized again, and the
  running stack takes what changed: state machine definitions (UpdateStateMachine, as a
  deploy does) and each function's environment, timeout and memory. A resource added or
  removed needs a new deploy, which the watcher says instead of half-doing it.

Changes are found by polling modification times, a few dozen files every quarter second:
no dependency, no inotify limits, and editors that save by renaming are seen too. A ``thumbs
run`` on the serve does not wait for the next poll: it asks first (``POST /_thumbs/sync``), and
the watcher applies what changed before the run uploads, so a run started the moment a file is
saved already runs the new code.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import PROJECT_ROOT
from ..template import SOURCES, load_template

if TYPE_CHECKING:
    from .session import Session

POLL_SECONDS = 0.25
# What the template is built from, but the handler code: a change there restarts workers instead.
STACK_SOURCES = tuple(name for name in SOURCES if name != "functions")


def _files(roots: list[Path]) -> dict[Path, int]:
    found: dict[Path, int] = {}
    for root in roots:
        paths = [root] if root.is_file() else root.rglob("*") if root.is_dir() else []
        for path in paths:
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".json", ".txt"):
                try:
                    found[path] = path.stat().st_mtime_ns
                except FileNotFoundError:
                    continue
    return found


def local_imports(code_dir: Path) -> dict[str, set[str]]:
    """For each top-level package or module in ``code_dir``, the others it imports, directly or not."""
    tops = {p.stem if p.is_file() else p.name for p in code_dir.iterdir() if p.suffix == ".py" or p.is_dir()}
    direct: dict[str, set[str]] = {top: set() for top in tops}
    for top in tops:
        path = code_dir / top
        files = list(path.rglob("*.py")) if path.is_dir() else [code_dir / f"{top}.py"]
        for file in files:
            try:
                tree = ast.parse(file.read_text())
            except (SyntaxError, OSError, UnicodeDecodeError):
                continue  # a half-saved file: the next poll sees it whole
            for node in ast.walk(tree):
                names = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module]
                    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                    else []
                )
                direct[top] |= {name.split(".")[0] for name in names} & tops - {top}
    closed: dict[str, set[str]] = {}
    for top in tops:
        seen, todo = set(), [top]
        while todo:
            for used in direct[todo.pop()] - seen:
                seen.add(used)
                todo.append(used)
        closed[top] = seen
    return closed


def functions_running(code_dir: Path, handlers: dict[str, str], changed: list[Path]) -> set[str]:
    """The functions (name -> handler ``package.module.function``) whose code includes a changed file."""
    imports = local_imports(code_dir)
    tops = set()
    for path in changed:
        try:
            tops.add(path.relative_to(code_dir).parts[0].removesuffix(".py"))
        except ValueError:
            continue
    affected = set()
    for name, handler in handlers.items():
        package = handler.split(".")[0]
        if package in tops or imports.get(package, set()) & tops:
            affected.add(name)
    return affected


class Watcher:
    """Polls the code and the CDK app of a running :class:`Session` and applies what changed."""

    def __init__(
        self,
        session: Session,
        *,
        code_dir: Path,
        project_root: Path = PROJECT_ROOT,
        say: Callable[[str], None] = print,
        template: Callable[[], dict[str, Any]] | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.session = session
        self.code_dir = code_dir
        self.stack_sources = [project_root / name for name in STACK_SOURCES]
        self.say = say
        self._load_template = template or (lambda: load_template(session.state.cache_dir))
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one look at a time: the polling thread's, or a run's sync
        self._thread: threading.Thread | None = None
        self.reloads = 0  # changes applied: tests and the console can wait on it

    def start(self) -> Watcher:
        self._seen = _files([self.code_dir]), _files(self.stack_sources)
        self._thread = threading.Thread(target=self._run, name="thumbs-watch", daemon=True)
        self._thread.start()
        self.session.stack.sync = self.poll  # POST /_thumbs/sync
        return self

    def stop(self) -> None:
        self.session.stack.sync = None
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.poll()

    def poll(self) -> int:
        """Apply what changed since the last look, and return how many changes have been applied so far.

        The polling thread calls it, and so does a run's sync. Under the lock a sync that
        meets a change already being applied waits for it, so it returns only when the
        stack runs the code as it is on disk.
        """
        with self._lock:
            code, stack = _files([self.code_dir]), _files(self.stack_sources)
            changed_code = _changed(self._seen[0], code)
            changed_stack = _changed(self._seen[1], stack)
            self._seen = code, stack
            try:
                if changed_stack:
                    self.apply_stack()
                elif changed_code:
                    self.apply_code(changed_code)
            except Exception as exc:  # noqa: BLE001 - a broken edit must not stop the stack; the next save retries
                self.say(f"watch: not applied ({type(exc).__name__}: {exc}); the stack keeps running as it was")
            return self.reloads

    def apply_code(self, changed: list[Path]) -> set[str]:
        """Restart the workers of each function whose code changed; returns their names."""
        runtime = self.session.stack.runtime
        assert runtime is not None
        handlers = {name: spec.handler for name, spec in runtime.functions.items()}
        affected = functions_running(self.code_dir, handlers, changed)
        for name in sorted(affected):
            runtime.restart(name)
        if affected:
            files = ", ".join(
                sorted(str(p.relative_to(self.code_dir)) for p in changed if p.is_relative_to(self.code_dir))
            )
            self.say(f"watch: {files} changed; restarted {', '.join(sorted(affected))}")
            self.reloads += 1
        return affected

    def apply_stack(self) -> list[str]:
        """Synthesize again and update the running stack in place; returns what was updated."""
        self.say("watch: the CDK app changed; synthesizing")
        updated = self.session.stack.update(self._load_template())
        self.session.forget_definitions()
        self.say(f"watch: updated {', '.join(updated) if updated else 'nothing (the template is the same)'}")
        self.reloads += 1
        return updated


def _changed(before: dict[Path, int], after: dict[Path, int]) -> list[Path]:
    return sorted({p for p in before.keys() | after.keys() if before.get(p) != after.get(p)})

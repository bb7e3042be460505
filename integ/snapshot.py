"""The integ test's committed snapshot: its templates, so a change to what it deploys shows in review.

integ-runner keeps such a snapshot itself, but the newest integ-runner npm offers (2.197.10)
reads cloud assemblies up to schema 53 and aws-cdk-lib 2.275 writes 55 (docs/operating.md,
"Integ tests"). Until it catches up, this module writes and checks the snapshot in its layout
(``integ_pipeline.py.snapshot/``), templates only: the bundles are tens of MB. Asset hashes and
each assertion's ``salt`` are left out, as integ-runner leaves them out of its comparison.

    .venv/bin/python integ/snapshot.py            # exit 1 and the differing files if out of date
    .venv/bin/python integ/snapshot.py --update   # write it after a deliberate change
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
APP = HERE / "integ_pipeline.py"
SNAPSHOT = HERE / "integ_pipeline.py.snapshot"
KEPT = re.compile(r".*\.template\.json$|^integ\.json$")
_ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")


def synthesize(outdir: Path) -> dict[str, Any]:
    """Run the integ app as the CDK CLI would, bundling skipped; the kept files by name, parsed."""
    env = {**os.environ, "CDK_OUTDIR": str(outdir), "THUMBS_SKIP_BUNDLING": "1"}
    result = subprocess.run([sys.executable, str(APP)], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"the integ app did not synthesize:\n{result.stderr[-4000:]}")
    return {path.name: json.loads(path.read_text()) for path in sorted(outdir.iterdir()) if KEPT.match(path.name)}


def normalized(document: Any) -> Any:
    """The document without what changes on every synth and means nothing to a reviewer.

    Asset hashes change with a bundle's bytes; each assertion's ``salt`` is the synth's clock,
    so that CloudFormation runs the assertion again on every deploy.
    """

    def unsalted(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: unsalted(v) for k, v in value.items() if k != "salt"}
        if isinstance(value, list):
            return [unsalted(v) for v in value]
        return value

    return json.loads(_ASSET_HASH.sub("<asset-hash>", json.dumps(unsalted(document), sort_keys=True)))


def committed() -> dict[str, Any]:
    return {path.name: json.loads(path.read_text()) for path in sorted(SNAPSHOT.glob("*")) if KEPT.match(path.name)}


def differences(fresh: dict[str, Any], kept: dict[str, Any]) -> list[str]:
    """One line per file that is new, gone or changed (asset hashes aside)."""
    lines = [f"new: {name}" for name in sorted(set(fresh) - set(kept))]
    lines += [f"gone: {name}" for name in sorted(set(kept) - set(fresh))]
    lines += [
        f"changed: {name}"
        for name in sorted(set(fresh) & set(kept))
        if normalized(fresh[name]) != normalized(kept[name])
    ]
    return lines


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as folder:
        fresh = synthesize(Path(folder))
    if "--update" in argv:
        SNAPSHOT.mkdir(exist_ok=True)
        for stale in SNAPSHOT.glob("*"):
            stale.unlink()
        for name, document in fresh.items():
            (SNAPSHOT / name).write_text(json.dumps(normalized(document), indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(fresh)} files to {SNAPSHOT.relative_to(HERE.parent)}")
        return 0
    lines = differences(fresh, committed())
    for line in lines:
        print(line)
    print("integ snapshot: out of date (--update after a deliberate change)" if lines else "integ snapshot: up to date")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The Lambda bundles: built by pip for the Lambda platform, lean, and pinned like the dev install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.bundling import FUNCTIONS_DIR, build_bundle, source_hash
from pipeline.bytecode import MAGIC_314, BytecodeError, compile_bundle, run_python

ROOT = Path(__file__).resolve().parent.parent


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            found[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return found


@pytest.mark.parametrize("function", ["validate", "resize", "record", "plan"])
def test_bundle_pins_match_the_tested_constraints(function):
    constraints = pins(ROOT / "constraints.txt")
    for name, version in pins(FUNCTIONS_DIR / function / "requirements.txt").items():
        assert constraints.get(name) == version, (
            f"{function} bundles {name}=={version}, tests use {constraints.get(name)}"
        )


def test_resize_bundle_is_built_for_lambda_arm64_without_docker(tmp_path):
    build_bundle("resize", tmp_path, "arm64")
    assert (tmp_path / "resize" / "handler.py").exists()
    assert (tmp_path / "imaging" / "thumbnail.py").exists() and (tmp_path / "awsio" / "__init__.py").exists()
    assert not (tmp_path / "validate").exists() and not (tmp_path / "record").exists()
    extensions = [p.name for p in (tmp_path / "PIL").glob("_imaging.*.so")]
    assert extensions and all("aarch64" in name and "cpython-314" in name for name in extensions)
    assert_every_module_has_its_314_bytecode(tmp_path)
    # boto3 and botocore come with the Lambda runtime; pydantic is only for the event parser.
    for absent in ("boto3", "botocore", "pydantic", "pydantic_core"):
        assert not (tmp_path / absent).exists(), absent
    assert_libwebp_is_linked(tmp_path)


def assert_every_module_has_its_314_bytecode(bundle: Path) -> None:
    """Lambda cannot write __pycache__ into /var/task: the bundle brings 3.14's, and nothing else."""
    sources = sorted(bundle.rglob("*.py"))
    assert len(sources) > 100
    for source in sources:
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-314.pyc"
        header = compiled.read_bytes()[:8]
        # PEP 552: the magic number, then flags 0b01 (hash-based, not checked against the source).
        assert header[:4] == MAGIC_314 and int.from_bytes(header[4:8], "little") == 0b01, compiled
    assert {p.name.split(".")[-2] for p in bundle.rglob("*.pyc")} == {"cpython-314"}


def test_lambda_s_python_runs_the_bundled_bytecode_not_the_source(tmp_path):
    """CPython 3.14 (Pyodide's) imports what compile_bundle wrote, even when the source says otherwise."""
    (tmp_path / "probe.py").write_text("ANSWER = 'from the bytecode'\n")
    compile_bundle(tmp_path)
    (tmp_path / "probe.py").write_text("ANSWER = 'from the source!'\n")  # and a newer timestamp
    code = "import sys; sys.dont_write_bytecode = True; sys.path.insert(0, '/bundle'); import probe; probe.ANSWER"
    assert run_python(tmp_path, code) == "from the bytecode"


def test_a_module_that_does_not_compile_fails_the_bundle(tmp_path):
    (tmp_path / "broken.py").write_text("def f(:\n")
    with pytest.raises(BytecodeError, match="does not compile"):
        compile_bundle(tmp_path)


def assert_libwebp_is_linked(bundle: Path) -> None:
    """imaging.webp reaches libwebp through Pillow's _webp: it must link it dynamically, with the symbols it calls."""
    if not shutil.which("readelf"):
        if os.environ.get("CI") == "true":
            pytest.fail("CI must check the bundle's libwebp, but readelf (binutils) is missing")
        pytest.skip("readelf (binutils) is not installed: cannot read the arm64 bundle's ELF files")
    (extension,) = (bundle / "PIL").glob("_webp.*.so")
    needed = subprocess.run(["readelf", "-d", str(extension)], capture_output=True, text=True, check=True).stdout
    (name,) = re.findall(r"\(NEEDED\)\s+Shared library: \[(libwebp-[^\]]+)\]", needed)
    symbols = subprocess.run(
        ["readelf", "--dyn-syms", "-W", str(bundle / "pillow.libs" / name)], capture_output=True, text=True, check=True
    ).stdout
    exported = {line.split()[-1] for line in symbols.splitlines() if " FUNC " in line and " UND " not in line}
    assert {"WebPDecode", "WebPGetFeaturesInternal", "WebPInitDecoderConfigInternal"} <= exported


def test_source_hash_differs_per_function_and_architecture():
    before = source_hash("resize", "arm64")
    assert source_hash("resize", "x86_64") != before
    assert source_hash("validate", "arm64") != before


def test_a_full_synth_bundles_every_function_without_docker(tmp_path):
    """What `cdk synth` does on a machine with no Docker engine and no AWS account."""
    from pipeline.app import build_app

    app, _ = build_app(outdir=str(tmp_path))
    assembly = app.synth()
    assets = [p for p in tmp_path.glob("asset.*") if p.is_dir()]
    handlers = sorted(h.parent.name for a in assets for h in a.glob("*/handler.py"))
    assert handlers == ["plan", "record", "resize", "validate"]
    assert assembly.get_stack_by_name("ThumbnailPipeline").template["Resources"]

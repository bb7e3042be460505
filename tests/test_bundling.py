"""The Lambda bundles: built by pip for the Lambda platform, lean, and pinned like the dev install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.bundling import FUNCTIONS_DIR, build_bundle, source_hash

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
    # No bytecode of this machine's Python, which Lambda's would ignore.
    assert not [p for p in tmp_path.rglob("*.pyc")]
    # boto3 and botocore come with the Lambda runtime; pydantic is only for the event parser.
    for absent in ("boto3", "botocore", "pydantic", "pydantic_core"):
        assert not (tmp_path / absent).exists(), absent
    assert_libwebp_is_linked(tmp_path)


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

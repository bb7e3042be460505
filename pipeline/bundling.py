"""Lambda bundles built on this machine with pip, because no Docker engine may be there.

Each function's asset is its handler folder, the shared ``imaging`` and ``awsio`` packages,
and the wheels its ``requirements.txt`` pins, fetched for the Lambda platform (manylinux,
the runtime's Python) rather than for the machine running ``cdk synth``, with the runtime's
bytecode beside every module (``pipeline/bytecode.py``).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from .bytecode import PYODIDE_VERSION, compile_bundle

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
SHARED_PACKAGES = ("imaging", "awsio")
LAMBDA_PYTHON = "3.14"
_MANYLINUX = ("manylinux_2_28", "manylinux_2_17", "manylinux2014")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "requirements.txt")


def platform_tags(architecture: str) -> list[str]:
    """Every manylinux tag Lambda's glibc accepts; Pillow 13 ships only manylinux_2_28 wheels."""
    machine = "aarch64" if architecture == "arm64" else "x86_64"
    return [f"{tag}_{machine}" for tag in _MANYLINUX]


def pip_command(requirements: Path, target: Path, architecture: str) -> list[str]:
    platforms = [arg for tag in platform_tags(architecture) for arg in ("--platform", tag)]
    return [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        # --no-compile: pip would compile with this machine's Python, and Lambda's 3.14 ignores
        # another version's .pyc; compile_bundle writes 3.14's.
        "--no-deps", "--no-compile", "--only-binary=:all:", "--implementation", "cp", "--python-version", LAMBDA_PYTHON,
        *platforms, "--target", str(target), "-r", str(requirements),
    ]  # fmt: skip


def build_bundle(name: str, output_dir: Path, architecture: str) -> None:
    """Write the deployable folder for function ``name`` into ``output_dir``."""
    for package in (*SHARED_PACKAGES, name):
        shutil.copytree(FUNCTIONS_DIR / package, output_dir / package, ignore=_IGNORE, dirs_exist_ok=True)
    result = subprocess.run(
        pip_command(FUNCTIONS_DIR / name / "requirements.txt", output_dir, architecture),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"bundling {name}: pip could not fetch the Lambda wheels:\n{result.stderr[-4000:]}")
    compile_bundle(output_dir)


@jsii.implements(ILocalBundling)
class _PipBundling:
    def __init__(self, name: str, architecture: str) -> None:
        self._name = name
        self._architecture = architecture

    def try_bundle(self, output_dir: str, options: object) -> bool:  # jsii passes the options struct positionally
        build_bundle(self._name, Path(output_dir), self._architecture)
        return True


def source_hash(name: str, architecture: str) -> str:
    """Changes when anything that goes into the bundle changes, so CDK re-bundles and redeploys."""
    digest = hashlib.sha256(f"{name}:{architecture}:{LAMBDA_PYTHON}:pyodide {PYODIDE_VERSION}".encode())
    for package in (*SHARED_PACKAGES, name):
        for path in sorted((FUNCTIONS_DIR / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(FUNCTIONS_DIR)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def function_code(name: str, architecture: str) -> lambda_.Code:
    """The asset for one function, bundled locally; the Docker image is named only as CDK requires one."""
    return lambda_.Code.from_asset(
        str(FUNCTIONS_DIR),
        asset_hash=source_hash(name, architecture),
        bundling=BundlingOptions(
            image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.14"),
            local=_PipBundling(name, architecture),
            command=["false"],  # never reached: local bundling always answers
        ),
    )

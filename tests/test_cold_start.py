"""What a handler's cold start imports: not the X-Ray SDK, and no decoder before an upload needs it.

Each check runs in a fresh interpreter, as a cold Lambda does, with the handler folders on the
path as in a bundle. ``benchmarks/cold_start.py`` measures the time these imports take.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import ConfigError, PipelineConfig

ROOT = Path(__file__).resolve().parent.parent
HANDLERS = ("validate", "resize", "record", "plan")
LAZY = ("aws_xray_sdk", "pillow_heif", "PIL.ImageCms", "pydantic", "ctypes", "imaging.webp")


def fresh(code: str, **env: str) -> object:
    """Run ``code`` in a new interpreter (handlers importable as in a bundle); it prints one JSON value."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT / "functions"), "POWERTOOLS_TRACE_DISABLED": "true", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("handler", HANDLERS)
def test_a_cold_handler_loads_no_tracing_sdk_and_no_optional_decoder(handler):
    loaded = fresh(
        f"import json, sys, {handler}.handler; print(json.dumps([m for m in {LAZY!r} if m in sys.modules]))",
        TRACE_AWS_CALLS="false",
    )
    assert loaded == []


@pytest.mark.parametrize("handler", ["record", "plan"])
def test_a_function_that_decodes_nothing_does_not_import_pillow(handler):
    """Record and Plan use only the imaging settings and rejections: Pillow is a third of an import."""
    code = (
        f"import json, sys, {handler}.handler; print(json.dumps(sorted(m for m in sys.modules if m.startswith('PIL'))))"
    )
    assert fresh(code, TRACE_AWS_CALLS="false") == []


def test_every_name_of_the_imaging_core_resolves_to_what_defines_it():
    """The decoding names load on first use; each one must still be the function or class, not a module."""
    code = (
        "import json, types, imaging; "
        "print(json.dumps({n: [isinstance(getattr(imaging, n), types.ModuleType), "
        "getattr(getattr(imaging, n), '__module__', '')] for n in imaging.__all__}))"
    )
    names = fresh(code)
    assert {name for name, (is_module, _) in names.items() if is_module} == set()
    assert names["probe"][1] == "imaging.facts" and names["prepare"][1] == "imaging.thumbnail"
    assert {module for _, (_, module) in names.items()} <= {
        "imaging.errors",
        "imaging.settings",
        "imaging.facts",
        "imaging.thumbnail",
        "",
    }


def test_trace_aws_calls_loads_the_sdk_with_the_handler():
    code = "import json, sys, resize.handler; print(json.dumps('aws_xray_sdk.core' in sys.modules))"
    assert fresh(code, TRACE_AWS_CALLS="false") is False
    assert fresh(code, TRACE_AWS_CALLS="true") is True


def test_a_heic_upload_loads_the_heif_decoder_and_is_thumbnailed(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    from PIL import Image

    buffer = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (640, 480), (200, 60, 30))).save(buffer, quality=80)
    code = (
        "import json, sys\n"
        "from imaging import ImagingSettings, make_thumbnail, probe\n"
        "before = 'pillow_heif' in sys.modules\n"
        f"data = open({str(tmp_path / 'sample.heic')!r}, 'rb').read()\n"
        "facts = probe(data, ImagingSettings())\n"
        "thumb = make_thumbnail(data, 128, ImagingSettings(), 'jpeg')\n"
        "print(json.dumps([before, 'pillow_heif' in sys.modules, facts.format, thumb.width, thumb.height]))"
    )
    (tmp_path / "sample.heic").write_bytes(buffer.getvalue())
    assert fresh(code) == [False, True, "HEIF", 128, 96]


def test_the_functions_are_told_whether_to_trace_aws_calls(template):
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    ours = [f for f in functions if "THUMBNAIL_SETTINGS" in f["Properties"].get("Environment", {}).get("Variables", {})]
    assert len(ours) == 4
    for function in ours:
        assert function["Properties"]["Environment"]["Variables"]["TRACE_AWS_CALLS"] == "false"
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}  # Lambda's own tracing stays


def test_trace_aws_calls_must_be_true_or_false():
    assert PipelineConfig.from_context({"trace_aws_calls": True}).trace_aws_calls is True
    with pytest.raises(ConfigError, match="trace_aws_calls: 1 is not true or false"):
        PipelineConfig.from_context({"trace_aws_calls": 1})


def test_reading_the_intermediate_does_not_load_every_pillow_plugin():
    """TIFF is registered by the imaging core: otherwise Image.open(formats=["TIFF"]) loads all of Pillow's plugins."""
    code = (
        "import json, sys\n"
        "from PIL import Image\n"
        "from imaging import intermediate_bytes, read_intermediate\n"
        "read_intermediate(intermediate_bytes(Image.new('RGB', (64, 48))))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('PIL.') and m.endswith('ImagePlugin'))))"
    )
    loaded = fresh(code)
    assert "PIL.TiffImagePlugin" in loaded and "PIL.PsdImagePlugin" not in loaded and len(loaded) < 10


def test_an_upload_in_any_accepted_format_does_not_load_every_pillow_plugin(tmp_path):
    """Image.open and save load all of Pillow's ~45 plugins on meeting an unregistered format (28 ms, 4 MB)."""
    from PIL import Image

    for fmt, mode in [("TIFF", "RGB"), ("WEBP", "RGB"), ("GIF", "P"), ("BMP", "RGB"), ("PNG", "RGBA")]:
        Image.new(mode, (64, 48)).save(tmp_path / fmt, fmt)
    code = (
        "import json, pathlib, sys\n"
        "from imaging import ImagingSettings, make_thumbnail\n"
        f"for upload in pathlib.Path({str(tmp_path)!r}).iterdir():\n"
        "    for output in ('jpeg', 'png', 'webp', 'avif'):\n"
        "        make_thumbnail(upload.read_bytes(), 32, ImagingSettings(), output)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('PIL.') and m.endswith('ImagePlugin'))))"
    )
    loaded = fresh(code)
    assert "PIL.TiffImagePlugin" in loaded and "PIL.AvifImagePlugin" in loaded
    assert "PIL.PsdImagePlugin" not in loaded and "PIL.EpsImagePlugin" not in loaded and len(loaded) < 10

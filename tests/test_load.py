"""Load: 1,000 uploads through the local stack lose nothing (100 outside CI, to keep make test quick)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from load import run_load

UPLOADS = 1000 if os.environ.get("CI") == "true" or os.environ.get("THUMBS_LOAD") else 100


def test_every_upload_gets_its_record_and_every_thumbnail(tmp_path, capsys):
    result = run_load(UPLOADS, tmp_path)
    assert result["code"] == 0
    records = {r["key"]: r for r in result["records"]}
    assert set(records) == set(result["keys"]) and len(records) == UPLOADS  # nothing lost, nothing extra
    for key, record in records.items():
        assert record["status"] == "SUCCEEDED", (key, record.get("error"))
        assert sorted(t["size"] for t in record["thumbnails"]) == [128, 256, 1024]
        assert all(t["key"].endswith(f"/{key}.jpg") for t in record["thumbnails"])  # each record matches its object
    assert result["thumbnail_files"] == 3 * UPLOADS
    with capsys.disabled():  # in the suite's output, not only on failure: CI's log keeps the figure
        print(
            f"\nload: {UPLOADS} uploads in {result['wall_s']:.1f} s ({UPLOADS / result['wall_s']:.1f}/s), "
            f"peak RSS runner {result['peak_rss_runner_mb']:.0f} MB, "
            f"largest Lambda worker {result['peak_rss_largest_worker_mb']:.0f} MB"
        )

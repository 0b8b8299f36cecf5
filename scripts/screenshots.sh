#!/bin/sh
# Refresh the documentation's screenshots (docs/img/) from the browser tests' own: runs the four tests that take
# them (a real `heygemd run` and `heygemd web` in Debian's chromium, as in the suite), then copies their PNGs.
# `make screenshots` runs it; the suite itself never takes them twice. Look at each PNG before committing it.
set -eu
cd "$(dirname "$0")/.."
ARTIFACTS=tests/artifacts
IMG=docs/img
rm -f "$ARTIFACTS"/*.png
# CI=true: without chromium or playwright the tests fail instead of skipping, so no stale picture is copied.
CI=true nice .venv/bin/python -m pytest -q \
    "tests/web/test_web_browser.py::test_upload_watch_the_progress_play_the_result_and_download_the_zip" \
    "tests/web/test_web_gallery.py::test_the_gallery_plays_searches_and_deletes" \
    "tests/web/test_web_phone.py::test_every_page_fits_a_phone_in_both_languages" \
    "tests/web/test_web_upload_page.py::test_drop_files_see_them_and_their_refusals_then_send"
mkdir -p "$IMG"
# The test's name for a picture, then the docs' name for it. Each is written with 256 colours (Pillow, dithered):
# a third of the size of the browser's PNG, no difference to see at the docs' scale.
.venv/bin/python - "$ARTIFACTS" "$IMG" <<'PY'
import sys
from pathlib import Path

from PIL import Image

SHOTS = {
    "dashboard.png": "dashboard-idle.png",
    "dashboard-rendering.png": "dashboard-rendering.png",
    "gallery.png": "gallery.png",
    "job-done.png": "job.png",
    "phone-dashboard.png": "phone-dashboard.png",
    "phone-job.png": "phone-job.png",
    "upload-dropped.png": "upload.png",
}
artifacts, img = Path(sys.argv[1]), Path(sys.argv[2])
for taken, shown in SHOTS.items():
    picture = Image.open(artifacts / taken).convert("RGB")
    picture.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(img / shown, optimize=True)
    print(img / shown, f"{(img / shown).stat().st_size // 1024} KiB")
PY

"""End to end in headless Chromium: drop a good and a defective image on the operator page, check
the verdicts and the overlays, mark a verdict wrong and find the review on disk."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .conftest import png
from .servers import kizu_serve

CHROMIUM = os.environ.get("KIZU_CHROMIUM", "/usr/bin/chromium")
SCREENSHOT = Path(os.environ.get("KIZU_SCREENSHOT", "")) if os.environ.get("KIZU_SCREENSHOT") else None
TOKEN = "browser-test-token-0123456789"

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


def test_operator_page(model_dir, data, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python package) is not installed")
    files = {"part-good.png": png(data.test[0]), "part-defect.png": png(data.test[-1])}
    for name, body in files.items():
        (tmp_path / name).write_bytes(body)
    (tmp_path / "token").write_text(TOKEN)
    reviews = tmp_path / "reviews"
    with kizu_serve(str(model_dir), "--token-file", str(tmp_path / "token"), "--reviews", str(reviews),
                    "--audit-rate", "0.02", "--audit-seed", "0", token=TOKEN) as (url, _), sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            context = browser.new_context(http_credentials={"username": "operator", "password": TOKEN},
                                          viewport={"width": 1100, "height": 900})
            page = context.new_page()
            page.goto(url + "/")
            page.wait_for_selector("#model:has-text('patch-knn')")
            assert "let defects through" in page.locator("#audit-note").inner_text()  # why only audits recalibrate
            page.set_input_files("#pick", [str(tmp_path / n) for n in files])
            page.wait_for_selector(".card.good")
            page.wait_for_selector(".card.bad")
            good, bad = page.locator(".card.good"), page.locator(".card.bad")
            assert good.locator(".badge").inner_text() == "GOOD"
            assert bad.locator(".badge").inner_text() == "DEFECTIVE"
            assert "part-defect.png" in bad.locator(".name").inner_text()
            assert "time in" in bad.locator(".words").inner_text()
            for card in (good, bad):  # the overlay PNG really loaded (not a broken image)
                card.locator(".overlay").evaluate("img => img.decode()")
                assert card.locator(".overlay").evaluate("img => img.naturalWidth") > 100
            assert bad.locator(".box").count() >= 1  # region boxes drawn on the original
            assert page.locator("#n-total").inner_text() == "2" and page.locator("#n-bad").inner_text() == "1"
            assert page.locator("#strip a").count() == 2
            bad.locator("button:has-text('Mark as good')").click()  # an operator overrules a false alarm
            page.wait_for_selector(".card.bad .saved")
            assert page.locator("#n-reviewed").inner_text() == "1"
            if SCREENSHOT is not None:
                page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    saved = list((reviews / "test" / "good").iterdir())
    assert len(saved) == 1 and saved[0].name.endswith("-part-defect.png")
    assert saved[0].read_bytes() == files["part-defect.png"]
    shutil.rmtree(reviews, ignore_errors=True)

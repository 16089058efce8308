"""Real Chromium pages for the dashboard's tests: Debian's `chromium`, driven by Playwright.

Playwright's own browser download is never used (`playwright install` is not run): the
system Chromium is launched by path, headless, with nothing that reaches the network.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "dashboard"
"""Written by every run (kept by CI as artifacts; gitignored)."""
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 390, "height": 844}


def chromium_path() -> str:
    """The browser to drive; without one, skip locally but fail in CI (it installs one)."""
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if path is None:
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@dataclass
class ConsoleLog:
    """Every console error and uncaught exception of a page."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> None:
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))


async def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def at_both_widths(page: Any, name: str) -> None:
    """Screenshots at 1280 and 390 px; the page must not scroll sideways at either."""
    for label, size in (("1280", WIDE), ("390", NARROW)):
        await page.set_viewport_size(size)
        await page.wait_for_timeout(100)
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} at {label} px scrolls sideways by {overflow} px"
        await screenshot(page, f"{name}-{label}")
    await page.set_viewport_size(WIDE)

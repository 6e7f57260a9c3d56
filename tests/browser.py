"""A real headless Chromium looks at churnmodel's HTML pages: layout checks and a screenshot.

The page is loaded in an iframe 1400 px wide inside a small probe page whose
script reads the layout (the reports themselves carry no scripts), and
Chromium prints the probe's DOM with the measurements.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

WIDTH = 1400
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
PROBE = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="page" src="{src}" style="width:{width}px;height:900px;border:0"></iframe>
<pre id="out">not loaded</pre>
<script>
document.getElementById("page").addEventListener("load", () => {{
  const d = document.getElementById("page").contentDocument;
  const images = [...d.images].map(i => {{
    const box = i.getBoundingClientRect();
    return [i.naturalWidth, i.naturalHeight, box.width, box.height];
  }});
  document.getElementById("out").textContent = JSON.stringify(
    {{scrollWidth: d.documentElement.scrollWidth, clientWidth: d.documentElement.clientWidth,
      images: images}});
}});
</script></body></html>
"""


@dataclass(frozen=True)
class Layout:
    """What the browser measured: page widths and each image's natural and shown size."""

    scroll_width: int
    client_width: int
    images: list[tuple[float, float, float, float]]

    def distorted(self, tolerance: float = 0.02) -> list[tuple[float, float, float, float]]:
        """Images shown with another aspect ratio than their own (beyond `tolerance`)."""
        return [
            img
            for img in self.images
            if img[1] and img[3] and abs((img[0] / img[1]) / (img[2] / img[3]) - 1) > tolerance
        ]


def browser() -> str:
    """The Chromium binary; `make test` installs it (Debian package `chromium`)."""
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    raise RuntimeError("no Chromium found: install it (apt-get install chromium) or run make test")


def _run(*args: str) -> str:
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    done = subprocess.run(
        [browser(), *flags, *args], capture_output=True, text=True, timeout=180, check=True
    )
    return done.stdout


def measure(page: Path, work: Path) -> Layout:
    """Load `page` 1400 px wide in a real browser and measure its layout."""
    probe = work / f"probe-{page.stem}.html"
    probe.write_text(PROBE.format(src=page.resolve().as_uri(), width=WIDTH))
    dom = _run(
        "--allow-file-access-from-files",
        "--virtual-time-budget=15000",
        "--dump-dom",
        probe.as_uri(),
    )
    found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
    assert found is not None, dom[:500]
    data = json.loads(found.group(1))
    return Layout(data["scrollWidth"], data["clientWidth"], [tuple(i) for i in data["images"]])


def screenshot(page: Path, target: Path) -> Path:
    """A full-width PNG of the page as a person would see it."""
    _run(f"--window-size={WIDTH},3000", f"--screenshot={target}", page.resolve().as_uri())
    return target

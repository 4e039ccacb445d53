"""Render every page of the built book in headless Chromium and report what a reader sees.

    jupyter-book build book
    python tools/screenshots.py [--html book/_build/html] [--out screenshots] [--width 1400]

For each page of the table of contents this writes PNG tiles of the whole page (``OUT/PAGE-N.png``,
each one screen high) and prints, per page, every image shown below 75 % of its own size with its
smallest text at display size (from the figure's font size in points and its dpi), and every
table wider than the column it sits in. It needs Chromium (Debian: ``apt-get install chromium``)
and ``pip install playwright`` (which drives the installed browser; it downloads nothing).
CI does not run it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALLEST_FONT_PT, DPI = 9.0, 100.0     # the smallest text the figures use, and their resolution

MEASURE = """() => {
  const images = [...document.querySelectorAll("article img")].map(img => ({
    src: img.getAttribute("src"), natural: img.naturalWidth, shown: img.clientWidth}));
  const tables = [...document.querySelectorAll("article table")].map(t => ({
    caption: (t.querySelector("caption") || {}).innerText || "(no caption)",
    width: t.scrollWidth, column: t.parentElement.clientWidth}));
  return {images, tables, height: document.documentElement.scrollHeight};
}"""


def pages(html: Path):
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    names = [toc["root"]]
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            names.append(chapter["file"])
            names += [s["file"] for s in chapter.get("sections", [])]
    return [(name, html / f"{name}.html") for name in names]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, default=ROOT / "book" / "_build" / "html")
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1800, help="height of one tile (px)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    if not (args.html / "index.html").exists():
        parser.error(f"--html {args.html} has no index.html; run `jupyter-book build book` first")
    if not Path(args.chromium).exists():
        parser.error(f"--chromium {args.chromium} not found; install it (Debian: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    problems = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium)
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        for name, path in pages(args.html):
            page.goto(path.resolve().as_uri())
            page.wait_for_timeout(1500)                 # MathJax typesets after load
            found = page.evaluate(MEASURE)
            stem = name.replace("/", "_")
            for i, top in enumerate(range(0, found["height"], args.height)):
                page.screenshot(path=args.out / f"{stem}-{i + 1}.png", full_page=True,
                                clip={"x": 0, "y": top, "width": args.width,
                                      "height": min(args.height, found["height"] - top)})
            print(f"{name}: {found['height']} px")
            for img in found["images"]:
                if img["natural"] and img["shown"] / img["natural"] < 0.75:
                    ratio = img["shown"] / img["natural"]
                    smallest = SMALLEST_FONT_PT / 72 * DPI * ratio
                    print(f"  image {img['src']}: shown at {ratio:.0%}, smallest text ≈ {smallest:.1f} px")
                    problems += smallest < 8
            for table in found["tables"]:
                if table["width"] > table["column"] + 1:
                    print(f"  table wider than its column ({table['width']} > {table['column']} px): "
                          f"{table['caption'][:80]}")
                    problems += 1
        browser.close()
    print(f"{problems} problem(s); screenshots in {args.out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Render every page of the built book in headless Chromium and report what a reader sees.

    jupyter-book build book
    python tools/screenshots.py [--html book/_build/html] [--out screenshots] [--widths 1400,390]

For each page of the table of contents and each window width this writes PNG tiles of the whole
page (``OUT/WIDTH/PAGE-N.png``, each one screen high) and measures:

* the share of the page's height taken by code cells a reader sees open (not folded behind a
  toggle), at the first width;
* the smallest figure text at display size: the figures' smallest font
  (:data:`dfsae.paper.plots.SMALLEST_FONT_PT`, which ``tests/test_book.py`` holds every
  notebook's figure code to) at their resolution (:data:`dfsae.paper.plots.DPI`), scaled by how
  much the page shrinks the image the browser chose (a figure's phone layout on a narrow window);
* whether the page scrolls sideways, and every table wider than the column it sits in.

It ends with one table of these per page and exits 1 when a page breaks a limit
(:data:`LIMITS`). It needs Chromium (Debian: ``apt-get install chromium``) and
``pip install playwright`` (which drives the installed browser; it downloads nothing). CI does not
run it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dfsae.paper.plots import DESKTOP_TEXT_PX, PHONE_TEXT_PX, text_px

ROOT = Path(__file__).resolve().parents[1]
LIMITS = {"open_code": 0.10, "text_wide": DESKTOP_TEXT_PX, "text_narrow": PHONE_TEXT_PX}
EXPERIMENT_PAGES = "notebooks/05_"     # where the open-code limit applies

MEASURE = """() => {
  const visible = el => !el.closest("details:not([open])") && el.getBoundingClientRect().height > 0;
  const article = document.querySelector("article") || document.body;
  const code = [...article.querySelectorAll("div.cell_input")].filter(visible)
    .reduce((sum, el) => sum + el.getBoundingClientRect().height, 0);
  const images = [...article.querySelectorAll("img")].filter(visible).map(img => ({
    src: img.getAttribute("src"), natural: img.naturalWidth, shown: img.clientWidth}));
  const tables = [...article.querySelectorAll("table")].filter(visible).map(t => ({
    caption: (t.querySelector("caption") || {}).innerText || "(no caption)",
    width: t.scrollWidth, column: t.parentElement.clientWidth}));
  const doc = document.documentElement;
  return {images, tables, code, article: article.getBoundingClientRect().height,
          height: doc.scrollHeight, overflow: doc.scrollWidth - doc.clientWidth};
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


def smallest_text(images) -> float | None:
    """The smallest figure text on the page in CSS pixels, or None without figures."""
    sizes = [text_px(img["natural"], img["shown"]) for img in images
             if img["natural"] and img["src"] and not img["src"].endswith(".svg")]
    return min(sizes) if sizes else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, default=ROOT / "book" / "_build" / "html")
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--widths", default="1400,390", help="window widths (px), comma-separated")
    parser.add_argument("--height", type=int, default=1800, help="height of one tile (px)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    if not (args.html / "index.html").exists():
        parser.error(f"--html {args.html} has no index.html; run `jupyter-book build book` first")
    if not Path(args.chromium).exists():
        parser.error(f"--chromium {args.chromium} not found; install it (Debian: apt-get install chromium)")
    try:
        widths = [int(w) for w in args.widths.split(",")]
    except ValueError:
        parser.error(f"--widths must be whole numbers separated by commas, e.g. 1400,390; "
                     f"got {args.widths!r}")
    if not widths or min(widths) < 200:
        parser.error(f"--widths must each be at least 200 px; got {args.widths!r}")
    from playwright.sync_api import sync_playwright

    rows, problems = {}, []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium)
        for n, width in enumerate(widths):
            out = args.out / str(width)
            out.mkdir(parents=True, exist_ok=True)
            page = browser.new_page(viewport={"width": width, "height": args.height})
            for name, path in pages(args.html):
                page.goto(path.resolve().as_uri())
                page.wait_for_timeout(1500)                 # MathJax typesets after load
                found = page.evaluate(MEASURE)
                stem = name.replace("/", "_")
                for i, top in enumerate(range(0, found["height"], args.height)):
                    page.screenshot(path=out / f"{stem}-{i + 1}.png", full_page=True,
                                    clip={"x": 0, "y": top, "width": width,
                                          "height": min(args.height, found["height"] - top)})
                row = rows.setdefault(name, {})
                if n == 0:
                    row["open_code"] = found["code"] / max(found["article"], 1.0)
                row[width] = {"text": smallest_text(found["images"]), "overflow": found["overflow"]}
                for table in found["tables"]:
                    if table["width"] > table["column"] + 1:
                        problems.append(f"{name} at {width} px: table wider than its column "
                                        f"({table['width']} > {table['column']} px): {table['caption'][:60]}")
            page.close()
        browser.close()

    wide, narrow = max(widths), min(widths)
    header = ["page", "open code", *(f"figure text at {w} px" for w in widths),
              f"sideways scroll at {narrow} px"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for name, row in rows.items():
        texts = [row[w]["text"] for w in widths]
        print(f"| {name} | {row['open_code']:.0%} | "
              + " | ".join("–" if t is None else f"{t:.1f}" for t in texts)
              + f" | {'no' if row[narrow]['overflow'] <= 0 else str(row[narrow]['overflow']) + ' px'} |")
        if name.startswith(EXPERIMENT_PAGES) and row["open_code"] > LIMITS["open_code"]:
            problems.append(f"{name}: {row['open_code']:.0%} of the page is open code "
                            f"(limit {LIMITS['open_code']:.0%})")
        for w, limit in ((wide, LIMITS["text_wide"]), (narrow, LIMITS["text_narrow"])):
            if row[w]["text"] is not None and row[w]["text"] < limit:
                problems.append(f"{name}: figure text {row[w]['text']:.1f} px at {w} px (limit {limit:g})")
        if row[narrow]["overflow"] > 0:
            problems.append(f"{name}: scrolls sideways by {row[narrow]['overflow']} px at {narrow} px")
    print("\n".join(["", *problems, f"{len(problems)} problem(s); screenshots in {args.out}"]))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

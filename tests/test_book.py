"""The book builds warning-free from the stored notebook outputs, every toc entry becomes a
page, and the rendered HTML is what a reader should see: every figure and table numbered and
captioned, no raw pandas output, math served locally, no table wider than the text column."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def toc_files(node):
    if isinstance(node, dict):
        if "file" in node:
            yield node["file"]
        if "root" in node:
            yield node["root"]
        for value in node.values():
            yield from toc_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from toc_files(item)


@pytest.fixture(scope="module")
def html(tmp_path_factory):
    if shutil.which("jupyter-book") is None:
        pytest.fail("jupyter-book is not installed; pip install -e '.[test]'")
    out = tmp_path_factory.mktemp("book")
    result = subprocess.run(["jupyter-book", "build", "book", "--path-output", str(out), "-W", "-n",
                             "--keep-going"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out / "_build" / "html"


def test_layout_links():
    assert (ROOT / "book" / "_toc.yml").resolve() == (ROOT / "_toc.yml").resolve()
    assert (ROOT / "book" / "notebooks").resolve() == (ROOT / "notebooks").resolve()


def test_every_notebook_is_paired():
    for md in (ROOT / "notebooks").glob("*.md"):
        assert md.with_suffix(".ipynb").exists(), f"{md.name} has no paired .ipynb"
        assert "formats: ipynb,md:myst" in md.read_text()


def test_every_toc_entry_has_a_page(html):
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = list(toc_files(toc))
    assert len(files) >= 14
    for f in files:
        assert (html / f"{f}.html").exists(), f"no page for toc entry {f}"


def figure_number(html, page, label):
    text = (html / f"{page}.html").read_text()
    figure = re.search(rf'<figure[^>]*id="{label}".*?</figure>', text, re.S)
    assert figure, f"figure {label} missing from {page}"
    assert "<img" in figure.group(0)
    return int(re.search(r"Figure (\d+)", figure.group(0)).group(1))


def test_the_experiments_figures_follow_each_other(html):
    numbers = [figure_number(html, page, label) for page, label in (
        ("notebooks/05_1_identity", "fig-identity"), ("notebooks/05_2_ablation", "fig-ablation"),
        ("notebooks/05_3_benchmark", "fig-benchmark"))]
    assert numbers[1] > numbers[0] and numbers[2] > numbers[1]


def content_pages(html):
    return sorted((html / "notebooks").glob("*.html"))


def main_content(page):
    text = page if isinstance(page, str) else page.read_text()
    start = text.find('<article class="bd-article"')
    return text[start:] if start >= 0 else text


def test_every_figure_and_table_is_numbered_and_captioned(html):
    for page in content_pages(html):
        text = main_content(page)
        for figure in re.findall(r"<figure.*?</figure>", text, re.S):
            number = re.search(r'<span class="caption-number">Figure \d+ </span>', figure)
            assert number, (page.name, figure[:300])
            assert re.search(r'alt="[^"]{20,}"', figure), f"{page.name}: a figure without alt text"
        for table in re.findall(r"<table.*?</table>", text, re.S):
            assert re.search(r'<caption>.*?<span class="caption-number">Table \d+ </span>', table, re.S), (
                page.name, table[:300])
        images = len(re.findall(r"<img ", text))
        in_figures = len(re.findall(r"<figure.*?<img .*?</figure>", text, re.S))
        assert images == in_figures, f"{page.name}: an image outside a figure"


def test_no_raw_pandas_or_unformatted_numbers(html):
    for page in content_pages(html):
        text = re.sub(r"<[^>]+>", " ", main_content(page))
        for bad in ("dtype:", "rows ×", "nan ±", "± nan", "NaN", "e+0"):
            assert bad not in text, f"{page.name} shows {bad!r}"


# Calibrated in Chromium at 1,400 px: body font (px per character), cell padding, text column.
CHAR_PX, CELL_PADDING_PX, COLUMN_PX = 8.4, 24.0, 784.0


def rendered_math(tex: str) -> str:
    """Inline math as wide as it renders, about: a glyph per command or character, unbroken."""
    tex = re.sub(r"\\text\{([^}]*)\}", r"\1", tex)
    tex = re.sub(r"\\[a-zA-Z]+|\\.", "x", tex)
    return re.sub(r"[{}_^\s]", "", tex)


def test_no_table_is_wider_than_the_column(html):
    """The narrowest a table can render is the sum over its columns of the longest word in each
    (cells wrap at spaces only); at the body font that must fit the text column."""
    for page in content_pages(html):
        for table in re.findall(r"<table.*?</table>", main_content(page), re.S):
            rows = [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
                    for row in re.findall(r"<tr.*?</tr>", table, re.S)]
            width = {}
            for row in rows:
                for i, cell in enumerate(row):
                    text = re.sub(r"<[^>]+>", " ", cell)
                    text = re.sub(r"\\\((.*?)\\\)", lambda m: rendered_math(m.group(1)), text)
                    text = text.replace("&nbsp;", "\u00a0").replace("&#160;", "\u00a0")
                    words = re.split(r"[ \t\n]+", text.strip())    # a no-break space joins words
                    width[i] = max(width.get(i, 0), max((len(w) for w in words), default=0))
            least = sum(CHAR_PX * w + CELL_PADDING_PX for w in width.values())
            assert least <= COLUMN_PX, f"{page.name}: a table needs at least {least:.0f} px"


def test_equations_one_to_six_are_numbered(html):
    pages = " ".join((html / f"notebooks/{p}.html").read_text()
                     for p in ("02_background", "03_infomax", "04_objective"))
    assert [int(n) for n in re.findall(r'class="eqno">\((\d+)\)', pages)] == [1, 2, 3, 4, 5, 6]


def test_no_missing_glue_or_citation(html):
    for page in html.rglob("*.html"):
        text = page.read_text()
        assert "glue:" not in text.replace("glue:figure", "") or page.name == "searchindex.js"
        assert "??" not in re.sub(r"<[^>]+>", "", text), f"unresolved reference in {page.name}"


def test_math_is_served_from_the_book_itself(html):
    """No page loads MathJax from a CDN: the book renders its math with no network."""
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
    for page in html.rglob("*.html"):
        text = page.read_text()
        assert "cdn.jsdelivr.net/npm/mathjax" not in text and "mathjax@" not in text, page.name
    assert 'src="../_static/mathjax/tex-chtml.js"' in (html / "notebooks" / "02_background.html").read_text()


def test_architecture_page_describes_the_layers(html):
    text = (html / "architecture.html").read_text()
    assert "dfsae.paper" in text and "FAMILIES" in text


def test_every_figure_and_table_is_cited_in_the_text(html):
    pages = {page: page.read_text() for page in html.rglob("*.html")}
    links = " ".join(re.findall(r'href="([^"]*#[^"]+)"', " ".join(pages.values())))
    for page in content_pages(html):
        text = main_content(pages[page])
        for label in re.findall(r'<(?:figure|table)[^>]*\bid="((?:fig|tab)-[^"]+)"', text):
            assert f"#{label}" in links, f"{page.name}: {label} is never cited"


SMALL_TEXT = re.compile(r"\b(?:fontsize|labelsize|size)\s*=\s*(?:(\d+(?:\.\d+)?)|[\"'](?:xx?-)?small[\"'])")


def test_no_figure_text_below_nine_points():
    """The figures' smallest text is 9 pt (matplotlib's default is 10): what the legibility
    report (tools/screenshots.py) assumes when it scales each figure to the page."""
    small = []
    for md in sorted((ROOT / "notebooks").glob("*.md")):
        for match in SMALL_TEXT.finditer(md.read_text()):
            size = match.group(1)
            if size is None or float(size) < 9:
                small.append(f"{md.name}: {match.group(0)}")
    assert not small, small


def stored_figures():
    """(notebook, desktop PNG width, phone layout width or None) for every image the stored
    notebooks show."""
    import base64
    import io
    import json

    from PIL import Image

    from dfsae.paper.plots import PHONE_KEY

    def width(data):
        return Image.open(io.BytesIO(base64.b64decode("".join(data)))).size[0]

    found = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            for output in cell.get("outputs", []):
                png = [v for k, v in output.get("data", {}).items() if k.endswith("image/png")]
                if not png:
                    continue
                phone = output.get("metadata", {}).get("image/png", {}).get(PHONE_KEY)
                found.append((path.name, width(png[0]), width(phone) if phone else None))
    return found


def test_every_phone_layout_is_served_to_a_narrow_window(html):
    """Each figure stored with a phone layout renders as a <picture> whose phone source exists and
    matches the narrow-window query; the desktop image keeps its alt text."""
    import sys

    from dfsae.paper.plots import PHONE_MEDIA

    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    from phonefigures import phone_layouts

    stored = {f"{key}-phone.png" for key in phone_layouts(ROOT / "notebooks")}
    assert len(stored) >= 10
    served = set()
    for page in content_pages(html):
        for picture in re.findall(r"<picture.*?</picture>", main_content(page), re.S):
            source = re.search(r'<source media="([^"]+)" srcset="([^"]+)"', picture)
            assert source and source.group(1) == PHONE_MEDIA, picture[:200]
            assert (page.parent / source.group(2)).is_file(), source.group(2)
            assert re.search(r'<img alt="[^"]{20,}"', picture), f"{page.name}: no alt text"
            served.add(Path(source.group(2)).name)
    assert served == stored


def test_every_figure_reads_at_nine_px_on_a_desktop_and_six_on_a_phone():
    """What the legibility report measures in a browser, checked on the stored images: a figure no
    wider than :func:`dfsae.paper.plots.desktop_max_px` keeps its smallest text at 9 px in the
    desktop column, and one wider than :func:`~dfsae.paper.plots.phone_max_px` carries a phone
    layout that is not (:func:`dfsae.paper.plots.responsive`)."""
    from dfsae.paper import plots

    figures = stored_figures()
    assert len(figures) >= 15
    wide = [f for f in figures if f[1] > plots.desktop_max_px()]
    assert not wide, f"too wide for the desktop column: {wide}"
    unreadable = [f for f in figures if (f[2] or f[1]) > plots.phone_max_px()]
    assert not unreadable, f"no phone layout narrow enough: {unreadable}"


# Each glossary term, as the prose may write it; the test below checks this list is the glossary's.
GLOSSARY_USES = {
    "Energy": r"energ(?:y|ies)", "Active": r"active", "Reading": r"readings?",
    "Responsibility": r"responsibilit(?:y|ies)", "Balance β": r"balance", "Mean point": r"mean point",
    "Sum point": r"sum point", "Implicit decoder": r"implicit decoders?",
    "Post-hoc decoder": r"post-hoc decoders?",
    "FVU": r"FVU", "Frontier": r"frontiers?", "Dead unit": r"dead units?", "Dense latent": r"dense latents?",
    "Verdict": r"verdicts?", "Converged": r"converged", "Digits": r"digits"}
NOT_PROSE = re.compile(
    r"(?m)^(`{3,}|:{3,})(?:.|\n)*?^\1[ \t]*$"         # fenced blocks: code cells, directives
    r"|\$\$(?:.|\n)*?\$\$|\$[^$\n]+\$"                # math
    r"|\{[\w:-]+\}`[^`]*`|`[^`]*`"                    # roles (a glossary link among them), inline code
    r"|^#[^\n]*$|^\([^\n]*\)=[ \t]*$|^\+\+\+[^\n]*$"      # headings, labels, cell breaks
    r"|\]\([^)]*\)|<[^>\n]+>")                        # link targets, html


def unlinked_first_uses(text: str) -> list[str]:
    """The glossary terms whose first use in a page's MyST source is plain text, not a link."""
    spans = [(m.start(), m.end(), m.group(0)) for m in NOT_PROSE.finditer(text)]
    unlinked = []
    for term, pattern in GLOSSARY_USES.items():
        links = [s for s, _, g in spans
                 if (m := re.fullmatch(r"\{term\}`([^`<]*?)\s*(?:<([^>]*)>)?`", g))
                 and (m.group(2) or m.group(1)).strip().lower() == term.lower()]
        flags = 0 if term == "FVU" else re.I
        plain = [m.start() for m in re.finditer(rf"(?<![\w-])(?:{pattern})(?!\w)", text, flags)
                 if not any(s <= m.start() < e for s, e, _ in spans)]
        if plain and (not links or plain[0] < links[0]):
            start = plain[0]
            unlinked.append(f"{term}: ...{text[max(start - 30, 0):start + 30]!r}...")
    return unlinked


def test_every_page_links_each_glossary_term_where_it_first_uses_it():
    """A reader who lands on any page meets each of the book's terms as a link to its definition."""
    glossary = (ROOT / "book" / "glossary.md").read_text()
    block = glossary.split("```{glossary}")[1].split("```")[0]
    terms = [line.strip() for line in block.splitlines() if line.strip() and not line.startswith(" ")]
    assert sorted(terms) == sorted(GLOSSARY_USES), "GLOSSARY_USES must list the glossary's terms"
    assert unlinked_first_uses("The energy E.")
    assert not unlinked_first_uses("The {term}`energy <Energy>`; energy.")
    assert not unlinked_first_uses("$E$ `energy` (sec-energy)=\n")
    found = {md.name: unlinked_first_uses(md.read_text()) for md in sorted((ROOT / "notebooks").glob("*.md"))}
    assert not {name: uses for name, uses in found.items() if uses}


def test_every_recording_notebook_compares_its_record_last():
    """A notebook that records its values must hand them to ``record.finish()`` in its last code
    cell; a record never finished is never compared with the stored run."""
    import jupytext

    recording = 0
    for md in sorted((ROOT / "notebooks").glob("*.md")):
        code = [c.source for c in jupytext.read(md).cells if c.cell_type == "code"]
        if not any("Record(" in c for c in code):
            continue
        recording += 1
        assert "record.finish()" in code[-1], f"{md.name}: its last code cell does not call record.finish()"
    assert recording >= 10


def test_every_stored_notebook_holds_the_cells_of_its_markdown_pair():
    """The book renders the .ipynb, readers edit the .md: a change to one that never reached the
    other would show text (or code) the outputs did not come from."""
    import jupytext

    def cells(nb):
        return [(c.cell_type, c.source.strip()) for c in nb.cells
                if "injected-parameters" not in c.metadata.get("tags", [])]

    for md in sorted((ROOT / "notebooks").glob("*.md")):
        a, b = cells(jupytext.read(md)), cells(jupytext.read(md.with_suffix(".ipynb")))
        assert len(a) == len(b), f"{md.name}: {len(a)} cells, its .ipynb {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert x == y, f"{md.name}: cell {i} differs from its .ipynb: {x[1][:80]!r} vs {y[1][:80]!r}"


# Pages where code names belong: the library's reference and the reproduction commands.
CODE_PAGES = {"99_reproduce.html"}
SNAKE = re.compile(r"\b[a-z][a-z0-9]*_[a-z0-9_]+\b")
NOT_CODE = {"x86_64"}   # a processor's name, as the machine reports it


def prose(page):
    """The page's running text: code cells (input and output), literal blocks, math, tables of
    numbers and cross-references to the API removed."""
    text = main_content(page)
    for block in (r'<div class="cell_input.*?</div>\s*</div>', r"<pre.*?</pre>",
                  r'<div class="highlight.*?</div>', r'<span class="math.*?</span>', r"<table.*?</table>",
                  r'<div class="math.*?</div>', r"\\\(.*?\\\)", r"\\\[.*?\\\]", r"\$\$.*?\$\$",
                  r'<code class="xref.*?</code>', r'<a class="reference external".*?</a>'):
        text = re.sub(block, " ", text, flags=re.S)
    return text


def test_no_code_names_in_the_prose(html):
    """The reader's names, not the code's: no code-formatted snake_case identifier or papermill flag
    in running text, and no snake_case word in plain text (a glued string that leaks a variable
    name), on every page but the reproduction page."""
    found = {}
    for page in content_pages(html):
        if page.name in CODE_PAGES:
            continue
        text = prose(page)
        codes = re.findall(r'<code class="docutils literal.*?</code>', text, re.S)
        literals = [re.sub(r"<[^>]+>", "", c) for c in codes]
        bad = [c for c in literals if SNAKE.search(c) or c.startswith("-p ")]
        plain = re.sub(r'<code class="docutils literal.*?</code>', " ", text, flags=re.S)
        plain = re.sub(r"<[^>]+>", " ", plain)
        bad += [w for w in SNAKE.findall(plain) if w not in NOT_CODE]
        if bad:
            found[page.name] = sorted(set(bad))
    assert not found, f"code names in the prose: {found}"


def test_the_reference_list_is_labelled_as_the_text_cites(html):
    """Author–year in the text, so author–year in the list ("Gao et al., 2024"), not alpha keys."""
    page = (html / "references.html").read_text()
    labels = [re.sub(r"<[^>]+>", "", label).strip("[] \n")
              for label in re.findall(r'<span class="label">(.*?)</span>\s*<p>', page, re.S)]
    assert labels, "no reference list found"
    for label in labels:
        assert re.fullmatch(r"[A-Z][\w\- ]+( et al\.| and [A-Z][\w\- ]+)?, \d{4}[a-z]?", label), label


def test_the_abstract_reads_in_a_minute_and_ends_in_the_key_results(html):
    """At most 250 words of prose as rendered (glued numbers count as words), then the table of
    key results with a coloured verdict badge in every row."""
    text = main_content(html / "notebooks" / "00_abstract.html")
    start, table = text.find("Abstract."), text.find("<table")
    assert 0 <= start < table, "the abstract must come before the key-results table"
    shown = re.sub(r"<details.*?</details>", " ", text[start:table], flags=re.S)   # folded code
    words = re.sub(r"<[^>]+>", " ", shown).split()
    assert 120 <= len(words) <= 250, f"the abstract has {len(words)} words"
    body = text[table:text.find("</table>", table)]
    rows = re.findall(r"<tr.*?</tr>", body, re.S)[1:]
    assert len(rows) >= 8 and all("sd-badge" in row for row in rows), "every key result needs a verdict badge"


def test_every_summary_page_holds_the_values_it_quotes_as_stored():
    """A page that quotes the others (``reglue_book``) stores their glued values in its outputs;
    when an experiment page is re-executed, each quoting page must be too, or it renders (and
    nbval compares) stale values."""
    from dfsae.paper.report import read_glued
    from dfsae.paper.reproduce import notebooks

    sources = notebooks(ROOT / "book")
    quoting = [p for p in sources.values() if "reglue_book" in p.read_text()]
    assert quoting, "no page quotes the others"
    expected = {}
    for source in sources.values():
        if "reglue" not in source.read_text():
            expected.update({k: v for k, v in read_glued(source.with_suffix(".ipynb")).items()
                             if isinstance(v, (int, float, str)) and not str(v).startswith("<")})
    for page in quoting:
        held = read_glued(page.with_suffix(".ipynb"))
        stale = sorted(k for k, v in expected.items() if held.get(k) != v)
        assert not stale, f"{page.name} quotes stale or missing values ({stale[:5]} …): re-execute it"

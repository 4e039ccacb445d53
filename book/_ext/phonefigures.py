"""Each figure's phone layout, served to narrow windows.

A notebook figure stored through :func:`dfsae.paper.plots.responsive` is a desktop PNG whose
output metadata carries a second PNG, its panels stacked for a phone
(:data:`dfsae.paper.plots.PHONE_KEY`). myst-nb renders the desktop PNG as usual (with the figure
directive's alt text and caption) and names its file by the SHA-256 of its bytes. This extension
reads the notebooks' stored outputs, writes each phone layout beside its desktop image
(``_images/<hash>-phone.png``), and renders those images as ``<picture>`` elements whose
``<source>`` a window matching :data:`dfsae.paper.plots.PHONE_MEDIA` picks.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from docutils import nodes
from sphinx.writers.html5 import HTML5Translator

from dfsae.paper.plots import PHONE_KEY, PHONE_MEDIA


def phone_layouts(notebooks: Path) -> dict[str, bytes]:
    """{SHA-256 of a desktop PNG: its phone layout's PNG} over the stored notebooks' outputs."""
    found = {}
    for path in sorted(notebooks.glob("*.ipynb")):
        for cell in json.loads(path.read_text()).get("cells", []):
            for output in cell.get("outputs", []):
                phone = output.get("metadata", {}).get("image/png", {})
                if not isinstance(phone, dict) or PHONE_KEY not in phone:
                    continue
                desktop = next(v for k, v in output.get("data", {}).items() if k.endswith("image/png"))
                desktop = "".join(desktop) if isinstance(desktop, list) else desktop
                key = hashlib.sha256(base64.b64decode(desktop)).hexdigest()
                found[key] = base64.b64decode(phone[PHONE_KEY])
    return found


def _attach(app, doctree, docname):
    if app.builder.format != "html":
        return
    if not hasattr(app, "dfsae_phones"):      # once per build, from the notebooks as they are now
        app.dfsae_phones = phone_layouts(Path(app.srcdir) / "notebooks")
    folder = Path(app.builder.outdir) / app.builder.imagedir
    for image in doctree.findall(nodes.image):
        key = Path(image["uri"]).stem
        if key in app.dfsae_phones:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{key}-phone.png").write_bytes(app.dfsae_phones[key])
            image["dfsae_phone"] = f"{key}-phone.png"


def visit_image(self, node):
    if node.get("dfsae_phone"):
        self.body.append(f'<picture class="dfsae-figure"><source media="{PHONE_MEDIA}" '
                         f'srcset="{self.builder.imgpath}/{node["dfsae_phone"]}">')
    HTML5Translator.visit_image(self, node)


def depart_image(self, node):
    HTML5Translator.depart_image(self, node)
    if node.get("dfsae_phone"):
        self.body.append("</picture>")


def setup(app):
    app.connect("doctree-resolved", _attach)
    app.add_node(nodes.image, override=True, html=(visit_image, depart_image))
    return {"parallel_read_safe": True, "parallel_write_safe": True}

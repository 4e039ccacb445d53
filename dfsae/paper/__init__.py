"""The paper's harness: what the book's notebooks run on top of the ``dfsae`` library.

* :mod:`dfsae.paper.experiments` — build, train and evaluate models of every family, over seeds
  and sweeps; parameter validation and atomic result files.
* :mod:`dfsae.paper.record` — the numbers a notebook reports, with the tolerance each is checked
  by when the notebook is re-executed on another machine; verdicts with an inconclusive band.
* :mod:`dfsae.paper.plots`, :mod:`dfsae.paper.mixture` — figures and the mixture-model demo.
* :mod:`dfsae.paper.report`, :mod:`dfsae.paper.reproduce` — the book's tooling: summary pages
  quote the experiments' stored outputs; ``python -m dfsae.paper.reproduce`` re-executes the
  notebooks listed in the book's ``_toc.yml``.

``import dfsae`` does not import this package (nor matplotlib, papermill or myst_nb).
"""

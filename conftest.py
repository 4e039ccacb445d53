"""Settings for every test run, the notebooks' too (``pytest --nbval notebooks``): a re-executed
notebook must compare its reported numbers with the stored run, never skip the comparison
(:meth:`dfsae.paper.record.Record.finish`). Kernels started by nbval inherit this environment."""

import os

os.environ.setdefault("DFSAE_REQUIRE_COMPARISON", "1")

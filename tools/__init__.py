"""Tooling beside the app, not part of it: the bill run benchmark
(``tools.bench``), the load test's seed (``tools.seed_load``), the demo's
data (``tools.seed_demo``), the synthetic books they load (``tools.books``)
and their usage (``tools.usage``).

The management commands ``bench_billrun``, ``seed_load`` and ``seed_demo`` are thin layers
over these; ``bin/loadtest`` and the fault tests import them directly. They
sit above every app (they drive the importer, the engine and the pages), so
no app imports them.
"""

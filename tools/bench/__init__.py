"""Benchmarks through the real code paths: ``billrun`` times a bill run end
to end (``manage.py bench_billrun``, ``make bench``; figures in
docs/benchmarks.md); ``measure`` holds what the timings are made of."""

"""NeuroRoute load-test harness: ``python -m bench.run`` (``make bench``)."""

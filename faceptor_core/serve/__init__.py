"""``faceptor serve``: the photo pipeline as a batched HTTP service (needs the ``serve`` extra).

Importing this package needs nothing beyond the core; :mod:`.app` needs FastAPI.
"""

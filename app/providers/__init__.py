"""Upstream providers: one module per kind behind the interface in :mod:`app.providers.base`."""

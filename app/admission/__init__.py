"""Admission of a request: per-key RPM/TPM, budget reservations, breaker state, cache entry."""

"""Relay variants benchmarked side by side with NeuroRoute; each is a small runnable module."""

"""Choosing a deployment for a request: the registry of model groups and the dispatcher."""

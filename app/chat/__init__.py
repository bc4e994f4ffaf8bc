"""The chat completions pipeline: admit -> route -> relay -> account."""

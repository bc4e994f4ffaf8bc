"""Usage and cost accounting: price table, usage records, the batched background writer."""

"""Client authentication: who is calling, and what they may use."""

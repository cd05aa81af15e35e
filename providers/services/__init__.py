"""Provider services: keys (vault), limits, quota."""

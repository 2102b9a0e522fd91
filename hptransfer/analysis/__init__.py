"""Analysis of sweep results: fit optima, draw figures. Reads the store only, never torch."""

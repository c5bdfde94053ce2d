"""Many edits at once: batch recipes and their jobs, settings sweeps, and getting the inversion each
photo edit needs."""

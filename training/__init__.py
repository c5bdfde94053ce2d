"""Scripts that make the shipped toy model. Not installed with the package: run them from a clone."""

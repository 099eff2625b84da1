"""The composition root: reads the settings, builds the catalog, the providers, the stores and both
edges, and runs them. The only package that may import every other part of ``service``."""

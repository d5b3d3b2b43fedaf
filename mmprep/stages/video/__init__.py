"""Video stages."""

"""Image stages."""

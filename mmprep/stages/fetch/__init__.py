"""Stages that bring inputs in from elsewhere (URLs)."""

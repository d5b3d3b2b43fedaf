"""Subtitle stages."""

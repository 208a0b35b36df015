"""Tiny generated test fixtures and the scripts that make them."""

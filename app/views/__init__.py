"""Blueprints: one per feature."""

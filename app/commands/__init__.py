"""Subcommands of `socialpulse` that train, evaluate and report on models."""

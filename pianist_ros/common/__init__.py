"""Shared helpers: parameter schema, diagnostics import site, node main, paths."""

"""Weights from elsewhere: networks trained by other frameworks, imported as run folders."""

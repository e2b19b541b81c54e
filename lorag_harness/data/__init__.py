"""Readers, pair building and the built-in dataset plugin."""

"""Shipped policy presets (TOML): the owners' scenarios A, B and C."""

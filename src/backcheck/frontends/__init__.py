"""Frontends translate user code (numpy layers, torch, jax) into the core contract."""

"""Adapters of known implementations (the reference library)."""

"""cid_provider: the reference cid provider (`cid-provider serve`)."""

__version__ = "0.1.0"

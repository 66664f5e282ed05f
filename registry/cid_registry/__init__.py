"""cid_registry: the reference cid registry server (aiohttp)."""

__version__ = "0.1.0"

"""cid: the compute identifier protocol (a DNS for compute)."""

__version__ = "0.1.0"
SPEC_VERSION = "0.1"

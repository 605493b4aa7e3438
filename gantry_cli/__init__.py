"""``gantry``: apply, diff and export a tenant's declarative configuration from a shell or CI."""

__version__ = "0.1.0"

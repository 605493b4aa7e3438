"""Names of IR objects other modules refer to (no imports: every IR module may use them)."""


def cluster_name(tenant: str, backend: str) -> str:
    """The Envoy cluster of a tenant's backend (routes and ext auth services share it)."""
    return f"{tenant}/backend/{backend}"

"""The local runtime: each replica a real Envoy process on this host, run by ``runtime_agent``."""

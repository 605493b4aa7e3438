"""Runtimes: where a gateway's Envoy replicas run (``local`` processes, or ``kubernetes``)."""

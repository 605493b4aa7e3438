"""Runtime drivers: where a gateway's Envoy replicas run (``local`` or ``kubernetes``)."""

"""Global rate limits: the service Envoy's ``ratelimit`` filter asks (Envoy's rate limit service
protocol, ``envoy.service.ratelimit.v3``), counting in Redis so every replica of a gateway
shares one count (docs/policies.md, "Global rate limits")."""

"""The plans every installation starts with (operators edit or add more in the admin).

Used by the data migration that creates them; keep entries stable once released.
"""

DEFAULT_PLANS = [
    {
        "name": "developer",
        "display_name": "Developer",
        "description": "For trying Gantry out: one small gateway.",
        "max_gateways": 2,
        "max_replicas_per_gateway": 2,
        "max_routes_per_gateway": 50,
        "max_backends": 20,
        "max_certificates": 10,
        "max_consumers": 100,
        "max_tokens_per_user": 10,
        "allowed_sizes": ["small"],
    },
    {
        "name": "standard",
        "display_name": "Standard",
        "description": "Production gateways for a team.",
        "max_gateways": 10,
        "max_replicas_per_gateway": 10,
        "max_routes_per_gateway": 1000,
        "max_backends": 200,
        "max_certificates": 100,
        "max_consumers": 1000,
        "max_tokens_per_user": 25,
        "allowed_sizes": ["small", "medium", "large"],
    },
    {
        "name": "enterprise",
        "display_name": "Enterprise",
        "description": "Large fleets of gateways.",
        "max_gateways": 200,
        "max_replicas_per_gateway": 50,
        "max_routes_per_gateway": 20000,
        "max_backends": 5000,
        "max_certificates": 2000,
        "max_consumers": 5000,
        "max_tokens_per_user": 100,
        "allowed_sizes": ["small", "medium", "large", "xlarge"],
    },
]

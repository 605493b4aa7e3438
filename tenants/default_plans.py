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
        "allowed_sizes": ["small"],
    },
    {
        "name": "standard",
        "display_name": "Standard",
        "description": "Production gateways for a team.",
        "max_gateways": 10,
        "max_replicas_per_gateway": 10,
        "max_routes_per_gateway": 1000,
        "allowed_sizes": ["small", "medium", "large"],
    },
    {
        "name": "enterprise",
        "display_name": "Enterprise",
        "description": "Large fleets of gateways.",
        "max_gateways": 200,
        "max_replicas_per_gateway": 50,
        "max_routes_per_gateway": 20000,
        "allowed_sizes": ["small", "medium", "large", "xlarge"],
    },
]

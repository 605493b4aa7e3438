"""The prices every installation starts with, one price book per default plan
(``tenants.default_plans``), in the API's shape. Used by the data migration that creates them;
keep entries stable once released (operators change prices with ``set_price_book``)."""

DEFAULT_PRICES = {
    "developer": {
        "currency": "USD",
        "replicaHour": {"small": "0.010", "medium": "0.020", "large": "0.040", "xlarge": "0.080"},
        "perMillionRequests": "0.50",
        "perGbSent": "0.08",
        "included": {"requests": 1_000_000, "gbSent": "10", "replicaHours": "744"},
    },
    "standard": {
        "currency": "USD",
        "replicaHour": {"small": "0.025", "medium": "0.050", "large": "0.100", "xlarge": "0.200"},
        "perMillionRequests": "0.40",
        "perGbSent": "0.07",
        "included": {"requests": 10_000_000, "gbSent": "100", "replicaHours": "0"},
    },
    "enterprise": {
        "currency": "USD",
        "replicaHour": {"small": "0.020", "medium": "0.040", "large": "0.080", "xlarge": "0.160"},
        "perMillionRequests": "0.25",
        "perGbSent": "0.05",
        "included": {"requests": 100_000_000, "gbSent": "1000", "replicaHours": "0"},
    },
}

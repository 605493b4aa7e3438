"""The operators' pages (``/ops/``): tenants, plans, clusters and platform health."""

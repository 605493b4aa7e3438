"""The routes the compile and propagation benchmarks build gateways from."""


def route_spec(i: int, hosts: int = 100) -> dict:
    """Route ``i``: on host ``host-<i % hosts>``, two rules (a prefix and header match with a
    header modifier and two weighted backends; an exact and method match with a timeout)."""
    return {
        "hostnames": [f"host-{i % hosts}.example.com"],
        "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": f"/api/{i}"},
                          "headers": [{"name": "x-tenant", "value": str(i % 7)}]}],
             "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
                 "set": [{"name": "x-route", "value": str(i)}]}}],
             "backendRefs": [{"name": f"svc-{i % 50}", "weight": 90},
                             {"name": f"svc-{(i + 1) % 50}", "weight": 10}]},
            {"matches": [{"path": {"type": "Exact", "value": f"/exact/{i}"}, "method": "GET"}],
             "backendRefs": [{"name": f"svc-{i % 50}"}],
             "timeouts": {"request": "5s"}},
        ],
    }  # fmt: skip

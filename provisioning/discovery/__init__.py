"""Kubernetes Service discovery for backends (docs/discovery.md): the operator's grants, the
watcher of EndpointSlices, and the ClusterLoadAssignments the xDS server builds from what it
wrote."""

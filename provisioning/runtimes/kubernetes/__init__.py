"""The Kubernetes runtime: render manifests (pure), apply them (server-side apply), read status.

See docs/kubernetes.md.
"""

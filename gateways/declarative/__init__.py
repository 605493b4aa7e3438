"""Declarative configuration: multi-document YAML of Gateway API and Envoy Gateway kinds.

``documents`` maps each document to a Gantry object and back (pure functions); ``apply`` writes
a whole file through the ordinary service functions in one transaction; ``export`` reads a
tenant's configuration back as documents.
"""

"""The xDS (ADS) server: serves each gateway's compiled resources to that gateway's Envoys.

``resources`` encodes compiled resources as protobuf; ``snapshots`` holds a gateway's config
and wakes streams when it changes (``SnapshotSource``); ``sotw`` and ``delta`` are the two ADS
protocols for one stream, without I/O; ``server`` is the grpc.aio service (authentication, ACK
recording); ``bootstrap`` renders the bootstrap a replica starts with.
"""

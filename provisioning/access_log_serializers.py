"""A gateway's access log entries as the API shows them (read-only)."""

from rest_framework import serializers


class AccessLogEntrySerializer(serializers.Serializer):
    timestamp = serializers.DateTimeField(read_only=True, help_text="when the request started")
    requestId = serializers.CharField(source="request_id", read_only=True)
    method = serializers.CharField(read_only=True)
    path = serializers.CharField(read_only=True, help_text="without the query string")
    status = serializers.IntegerField(read_only=True, help_text="0: no response was sent")
    responseFlags = serializers.CharField(
        source="flags", read_only=True, help_text="Envoy's response flags, e.g. NR, UF, URX"
    )
    route = serializers.CharField(read_only=True, help_text="the route's name; empty: none")
    consumer = serializers.CharField(
        read_only=True, help_text="the API key or basic auth consumer; empty: none"
    )
    bytesReceived = serializers.IntegerField(source="bytes_received", read_only=True)
    bytesSent = serializers.IntegerField(source="bytes_sent", read_only=True)
    durationMs = serializers.IntegerField(source="duration_ms", read_only=True, allow_null=True)
    upstreamServiceTimeMs = serializers.IntegerField(
        source="upstream_ms", read_only=True, allow_null=True
    )
    upstreamHost = serializers.CharField(source="upstream_host", read_only=True)
    clientAddress = serializers.CharField(source="client_address", read_only=True)
    listenerPort = serializers.IntegerField(
        source="port", read_only=True, allow_null=True, help_text="the port Envoy accepted it on"
    )
    userAgent = serializers.CharField(source="user_agent", read_only=True)
    replica = serializers.IntegerField(read_only=True)

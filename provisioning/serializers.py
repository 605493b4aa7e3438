"""API shapes of config revisions and the operations timeline (read-only)."""

from rest_framework import serializers

from provisioning import receipts, revisions

RECEIPTS_HELP = (
    "when each replica applied it (ACKed its version for every resource type), counted from "
    "when the change was accepted: applied, desired, totalMs (the slowest replica), text "
    "('applied 2/2 in 41 ms') and replicas [{node, appliedAt, afterMs}]"
)


class RevisionSerializer(serializers.Serializer):
    number = serializers.IntegerField(read_only=True)
    state = serializers.CharField(read_only=True)
    hash = serializers.CharField(source="content_hash", read_only=True)
    current = serializers.BooleanField(read_only=True)
    message = serializers.CharField(read_only=True)
    size = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="bytes of compiled config (canonical JSON)"
    )
    restoredFrom = serializers.IntegerField(
        source="restored_from", read_only=True, allow_null=True,
        help_text="for a rollback: the revision whose routing and policy it restores",
    )  # fmt: skip
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    createdBy = serializers.CharField(source="created_by", read_only=True)
    programmedAt = serializers.DateTimeField(
        source="programmed_at", read_only=True,
        help_text="when every desired replica first ran it",
    )  # fmt: skip
    requestedAt = serializers.DateTimeField(
        source="requested_at", read_only=True,
        help_text="when the change that asked for it was accepted (or the heal or rollback began)",
    )  # fmt: skip
    receipts = serializers.SerializerMethodField(help_text=RECEIPTS_HELP)

    def get_receipts(self, revision) -> dict:
        return receipts.of(revision, revision.gateway).as_api()


class RevisionDetailSerializer(RevisionSerializer):
    """One revision with its compiled resources as YAML (secrets redacted) and the desired
    state it was compiled from (certificates and credentials by fingerprint). A revision over
    ``GANTRY_REVISION_READ_MAX_BYTES`` is shown without its YAML (``resources`` is null and
    ``resourcesOmitted`` says why)."""

    resources = serializers.SerializerMethodField()
    resourcesOmitted = serializers.SerializerMethodField()
    desiredState = serializers.SerializerMethodField()

    def get_desiredState(self, revision) -> dict:  # noqa: N802 (the API's name)
        return revisions.desired_state_of(revision)

    def get_resources(self, revision) -> str | None:
        try:
            revisions.check_readable(revision)
        except revisions.TooLarge:
            return None
        return revisions.as_yaml(revision)

    def get_resourcesOmitted(self, revision) -> str | None:  # noqa: N802 (the API's name)
        try:
            revisions.check_readable(revision)
        except revisions.TooLarge as error:
            return error.message
        return None


class RevisionDiffSerializer(serializers.Serializer):
    fromRevision = serializers.IntegerField()
    toRevision = serializers.IntegerField()
    diff = serializers.CharField(help_text="unified diff of the two revisions' YAML")


class OperationSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    kind = serializers.CharField(read_only=True)
    state = serializers.CharField(read_only=True)
    message = serializers.CharField(read_only=True)
    revision = serializers.IntegerField(source="revision.number", default=None, read_only=True)
    createdBy = serializers.CharField(source="created_by", read_only=True)
    startedAt = serializers.DateTimeField(source="started_at", read_only=True)
    finishedAt = serializers.DateTimeField(source="finished_at", read_only=True)
    timings = serializers.DictField(
        child=serializers.FloatField(), read_only=True,
        help_text="milliseconds per stage: queue, lock, compile, validate, store, status, runtime",
    )  # fmt: skip
    receipts = serializers.SerializerMethodField(
        help_text="the receipts of the revision it made (see revisions), or null"
    )

    def get_receipts(self, operation) -> dict | None:
        if operation.revision is None:
            return None
        return receipts.of(operation.revision, operation.gateway).as_api()


class ReplicaSerializer(serializers.Serializer):
    index = serializers.IntegerField(read_only=True)
    node = serializers.CharField(read_only=True, help_text="the node id it names itself by")
    state = serializers.CharField(
        read_only=True, help_text="starting | running | backoff | draining | stopped"
    )
    connected = serializers.BooleanField(read_only=True, help_text="has a stream to xDS open")
    revision = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="the config revision it has ACKed"
    )
    restarts = serializers.IntegerField(read_only=True)
    lastExitCode = serializers.IntegerField(source="last_exit_code", read_only=True)
    message = serializers.CharField(read_only=True)
    startedAt = serializers.DateTimeField(source="started_at", read_only=True)

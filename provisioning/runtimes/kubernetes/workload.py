"""The Deployment of a gateway's Envoy replicas.

Each pod starts with an init container (the platform's image) that enrolls the pod with the
xDS server: it proves which pod it is with a projected service account token (audience
``gantry-xds``, ten minutes, mounted into the init container only) and writes the bootstrap it
gets back (the pod's own node id and xDS token) into a memory ``emptyDir`` that Envoy reads. No
Secret and no object of the namespace holds an xDS token.
"""

from provisioning.runtimes.kubernetes import envoy_pod, names
from provisioning.runtimes.kubernetes.gateway import meta, service_ports
from provisioning.runtimes.kubernetes.inputs import ClusterSettings, GatewayInput

ENVOY_UID = 101  # the envoy user of the official image (the init container runs as it too)
IDENTITY_VOLUME = "xds-identity"
IDENTITY_DIR = "/var/run/secrets/gantry-xds"
IDENTITY_AUDIENCE = "gantry-xds"
IDENTITY_SECONDS = 600  # the shortest lifetime Kubernetes allows
ENROLL_DEADLINE_SECONDS = 300
# What the init container may use (requests = limits, for Guaranteed QoS).
ENROLL_RESOURCES = {"cpu": "100m", "memory": "256Mi"}


def _spread(gateway: GatewayInput) -> list[dict]:
    """Prefer replicas in different zones and on different nodes, without refusing to
    schedule on a small cluster."""
    selector = {"matchLabels": names.selector_labels(gateway.tenant, gateway.name)}
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": selector,
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def _container(gateway: GatewayInput, cluster: ClusterSettings) -> dict:
    admin_port, ready_port = envoy_pod.internal_ports(gateway.ports)
    resources = {"cpu": str(gateway.vcpu), "memory": f"{gateway.memory_gib}Gi"}
    ports = [
        {"name": port["name"], "containerPort": port["port"], "protocol": "TCP"}
        for port in service_ports(gateway)
    ]
    ports.append({"name": names.READY_PORT_NAME, "containerPort": ready_port, "protocol": "TCP"})
    return {
        "name": "envoy",
        "image": cluster.envoy_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["envoy"],
        "args": envoy_pod.envoy_args(gateway.key, gateway.vcpu),
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "ports": ports,
        # Guaranteed QoS: what the size promises is what the pod gets.
        "resources": {"requests": resources, "limits": resources},
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": names.READY_PORT_NAME},
            "periodSeconds": 5,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "tcpSocket": {"port": names.READY_PORT_NAME},
            "initialDelaySeconds": 30,
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "lifecycle": {"preStop": {"exec": {"command": envoy_pod.drain_command(admin_port)}}},
        "securityContext": _locked_down(),
        "volumeMounts": [
            {"name": "bootstrap", "mountPath": envoy_pod.BOOTSTRAP_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (a private emptyDir)
        ],
    }


def _locked_down() -> dict:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _enroll_container(gateway: GatewayInput, cluster: ClusterSettings) -> dict:
    """Proves the pod's identity to the xDS server and writes the bootstrap it answers with."""
    return {
        "name": "enroll",
        "image": cluster.platform_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "provisioning.xds.enroll"],
        "args": [
            "--xds",
            f"{cluster.xds_address}:{cluster.xds_port}",
            "--gateway",
            gateway.key,
            "--token-file",
            f"{IDENTITY_DIR}/token",
            "--output",
            envoy_pod.BOOTSTRAP_PATH,
            "--deadline",
            str(ENROLL_DEADLINE_SECONDS),
        ],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        ],
        "resources": {"requests": ENROLL_RESOURCES, "limits": ENROLL_RESOURCES},
        "securityContext": _locked_down(),
        "volumeMounts": [
            {"name": IDENTITY_VOLUME, "mountPath": IDENTITY_DIR, "readOnly": True},
            {"name": "bootstrap", "mountPath": envoy_pod.BOOTSTRAP_DIR},
        ],
    }


def deployment(gateway: GatewayInput, cluster: ClusterSettings) -> dict:
    selector = names.selector_labels(gateway.tenant, gateway.name)
    pod_meta = {"labels": names.gateway_labels(gateway.tenant, gateway.name)}
    pod_spec = {
        "serviceAccountName": names.workload(gateway.name),
        # No API token anywhere in the pod: only the init container's projected one, which
        # the API server accepts for audience gantry-xds only.
        "automountServiceAccountToken": False,
        # No environment variables for every Service of the namespace (other gateways').
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": envoy_pod.TERMINATION_GRACE_SECONDS,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": ENVOY_UID,
            "runAsGroup": ENVOY_UID,
            "fsGroup": ENVOY_UID,  # owns the volumes: the bootstrap, the identity token
            "seccompProfile": {"type": "RuntimeDefault"},
            # Listeners bind their own ports (80, 443) without any capability.
            "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}],
        },
        "topologySpreadConstraints": _spread(gateway),
        "initContainers": [_enroll_container(gateway, cluster)],
        "containers": [_container(gateway, cluster)],
        "volumes": [
            {
                "name": IDENTITY_VOLUME,
                "projected": {
                    "defaultMode": 0o440,
                    "sources": [
                        {
                            "serviceAccountToken": {
                                "audience": IDENTITY_AUDIENCE,
                                "expirationSeconds": IDENTITY_SECONDS,
                                "path": "token",
                            }
                        }
                    ],
                },
            },
            # Written by the init container (mode 0600, the envoy user), read by Envoy.
            {"name": "bootstrap", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        ],
    }
    # Without autoscaling the replica count is ours; with it, the HPA's (never both).
    spec = {} if gateway.autoscaling else {"replicas": gateway.replicas}
    spec |= {
        "selector": {"matchLabels": selector},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
        },
        "template": {"metadata": pod_meta, "spec": pod_spec},
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(gateway), "spec": spec}

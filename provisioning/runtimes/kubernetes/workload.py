"""The Deployment of a gateway's Envoy replicas."""

import hashlib

from provisioning.runtimes.kubernetes import envoy_pod, names
from provisioning.runtimes.kubernetes.gateway import bootstrap_yaml, meta, service_ports
from provisioning.runtimes.kubernetes.inputs import ClusterSettings, GatewayInput

ENVOY_UID = 101  # the envoy user of the official image
BOOTSTRAP_HASH_ANNOTATION = "gantry.io/bootstrap-hash"


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
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "bootstrap", "mountPath": "/etc/envoy", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (a private emptyDir)
        ],
    }


def deployment(gateway: GatewayInput, cluster: ClusterSettings) -> dict:
    selector = names.selector_labels(gateway.tenant, gateway.name)
    # A new bootstrap (token, xDS address) only reaches Envoy through a restart: roll the pods.
    bootstrap_hash = hashlib.sha256(bootstrap_yaml(gateway, cluster).encode()).hexdigest()
    pod_meta = {
        "labels": names.gateway_labels(gateway.tenant, gateway.name),
        "annotations": {BOOTSTRAP_HASH_ANNOTATION: bootstrap_hash},
    }
    pod_spec = {
        "serviceAccountName": names.workload(gateway.name),
        "automountServiceAccountToken": False,
        # No environment variables for every Service of the namespace (other gateways').
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": envoy_pod.TERMINATION_GRACE_SECONDS,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": ENVOY_UID,
            "runAsGroup": ENVOY_UID,
            "fsGroup": ENVOY_UID,  # can read the bootstrap (mode 0440)
            "seccompProfile": {"type": "RuntimeDefault"},
            # Listeners bind their own ports (80, 443) without any capability.
            "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}],
        },
        "topologySpreadConstraints": _spread(gateway),
        "containers": [_container(gateway, cluster)],
        "volumes": [
            {
                "name": "bootstrap",
                "secret": {"secretName": names.workload(gateway.name), "defaultMode": 0o440},
            },
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

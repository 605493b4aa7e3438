from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    """Desired state → running Envoy: IR, translation, revisions, xDS and runtimes (to come)."""

    name = "provisioning"
    verbose_name = "Provisioning"

"""Gateway sizes: what a tenant picks, and the Envoy concurrency and resources it maps to."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    name: str
    vcpu: int
    memory_gib: int

    @property
    def concurrency(self) -> int:
        """Envoy worker threads: one per vCPU."""
        return self.vcpu


SIZES = {
    size.name: size
    for size in (
        Size("small", 1, 2),
        Size("medium", 2, 4),
        Size("large", 4, 8),
        Size("xlarge", 8, 16),
    )
}

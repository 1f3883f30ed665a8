"""Memory of common data-center and workstation GPUs, keyed by their node label.

The keys are the values NVIDIA's GPU feature discovery writes into the `nvidia.com/gpu.product`
node label (the value `spec.resources.gpuProduct` asks for), the figures the total memory the
driver reports (`nvidia-smi --query-gpu=memory.total`), in MiB. The driver reports a little
less than the marketing size (an "80 GB" H100 shows 81559 MiB, 79.6 GiB), and vLLM's
gpuMemoryUtilization is a share of exactly this figure, so this is the figure to plan with.
A GPU that is not listed can be described by `spec.resources.gpuMemory`.
"""

from __future__ import annotations

from typing import Final

MIB: Final = 1024 * 1024

GPU_MEMORY_MIB: Final[dict[str, int]] = {
    "NVIDIA-H200": 143771,
    "NVIDIA-H100-80GB-HBM3": 81559,
    "NVIDIA-H100-PCIe": 81559,
    "NVIDIA-H100-NVL": 95830,
    "NVIDIA-A100-SXM4-80GB": 81920,
    "NVIDIA-A100-80GB-PCIe": 81920,
    "NVIDIA-A100-SXM4-40GB": 40960,
    "NVIDIA-A100-PCIE-40GB": 40960,
    "NVIDIA-L40S": 46068,
    "NVIDIA-L40": 46068,
    "NVIDIA-RTX-A6000": 49140,
    "NVIDIA-L4": 23034,
    "NVIDIA-A10G": 23028,
    "NVIDIA-A10": 23028,
    "NVIDIA-GeForce-RTX-4090": 24564,
    "NVIDIA-GeForce-RTX-3090": 24576,
    "Tesla-T4": 15360,
    "Tesla-V100-SXM2-32GB": 32768,
    "Tesla-V100-SXM2-16GB": 16384,
}


def gpu_memory_bytes(product: str | None) -> int | None:
    """Total memory of one GPU of this product, or None when the product is not listed."""
    if product is None or product not in GPU_MEMORY_MIB:
        return None
    return GPU_MEMORY_MIB[product] * MIB

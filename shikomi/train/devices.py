"""What a GPU can do, for MFU and the choice of precision.

`PEAK_BF16` is the dense (no sparsity) bf16 tensor-core peak per device in TFLOP/s,
from the vendors' data sheets, matched on whole words of `torch.cuda.get_device_name`
(so "L4" never matches "L40", and an H100 is PCIe, NVL or SXM by its name). A GPU
that is not in the table gets a warning and no MFU unless `train.peak_tflops` is set.
bf16 needs compute capability 8.0 (Ampere) or later: a V100 (7.0) trains in fp32.
"""

from __future__ import annotations

import re

# (words that must all appear in the device name, dense bf16 TFLOP/s); the first match wins
PEAK_BF16: list[tuple[tuple[str, ...], float]] = [
    (("GH200",), 989.0),
    (("H200", "NVL"), 835.0),
    (("H200",), 989.0),
    (("H100", "NVL"), 835.0),
    (("H100", "PCIE"), 756.0),
    (("H100", "HBM3"), 989.0),  # "NVIDIA H100 80GB HBM3": the SXM5 board
    (("H100", "SXM5"), 989.0),
    (("H800", "PCIE"), 756.0),
    (("H800",), 989.0),
    (("H20",), 148.0),
    (("A100",), 312.0),
    (("A800",), 312.0),
    (("A30",), 165.0),
    (("A10",), 125.0),
    (("L40S",), 362.0),
    (("L40",), 181.0),
    (("L4",), 121.0),
    (("B200",), 2250.0),
    (("MI300X",), 1307.0),
    (("MI250X",), 383.0),
]

BF16_MIN_CAPABILITY = (8, 0)


def name_words(name: str) -> set[str]:
    return set(re.split(r"[\s\-_/]+", name.upper())) - {""}


def peak_bf16_flops(name: str) -> float | None:
    """Dense bf16 peak FLOP/s of a device by its name, or None when it is not known."""
    words = name_words(name)
    for need, tflops in PEAK_BF16:
        if all(w in words for w in need):
            return tflops * 1e12
    return None


def bf16_supported(capability: tuple[int, int]) -> bool:
    """bf16 tensor cores: NVIDIA compute capability 8.0 or later (AMD: always, via ROCm)."""
    return tuple(capability) >= BF16_MIN_CAPABILITY

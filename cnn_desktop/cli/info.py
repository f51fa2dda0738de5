"""``cnn-desktop info``: versions, devices, ONNX Runtime providers that really work."""

from __future__ import annotations

import argparse
import json

from cnn_desktop.cli.common import EXIT_OK


def run_info(args: argparse.Namespace) -> int:
    """Print versions, devices and the ONNX Runtime providers that work."""
    from cnn_desktop.core.inference import system_info

    info = system_info()
    if args.format == "json":
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"cnn-desktop {info['cnn_desktop']}  (Python {info['python']}, {info['platform']})")
    print(f"CPU threads: {info['cpu_threads']}")
    print("Packages:")
    for name, version in info["packages"].items():
        print(f"  {name:20} {version}")
    print("ONNX Runtime providers (available → working):")
    for provider in info["onnx_providers"]:
        state = "working" if provider["working"] else "not working"
        print(f"  {provider['name']:28} {state}  ({provider['detail']})")
    torch_info = info.get("torch", {})
    if torch_info.get("installed"):
        cuda = ", ".join(torch_info["cuda_devices"]) or "no CUDA device"
        has_cuda = "yes" if torch_info["cuda_available"] else "no"
        has_mps = "yes" if torch_info["mps_available"] else "no"
        print(f"PyTorch {torch_info['version']}: CUDA {has_cuda} ({cuda}); MPS {has_mps}")
    else:
        print("PyTorch: not installed (full and scratch training, Grad-CAM and the torch backend)")
    return EXIT_OK

"""The text of Help → About: versions, devices, providers that really work."""

from __future__ import annotations

import html
from typing import Any


def about_html(info: dict[str, Any], model: str) -> str:
    """Rich text for the About box from ``core.sysinfo.system_info()``."""
    packages = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(version)}</td></tr>"
        for name, version in info["packages"].items()
        if version != "not installed"
    )
    providers = "".join(
        f"<li>{html.escape(p['name'])}: {'working' if p['working'] else 'not working'}"
        f" <small>({html.escape(p['detail'])})</small></li>"
        for p in info["onnx_providers"]
    )
    torch_info = info.get("torch", {})
    if torch_info.get("installed"):
        cuda = ", ".join(torch_info["cuda_devices"]) or "no CUDA device"
        torch_line = (
            f"PyTorch {html.escape(torch_info['version'])}: {html.escape(cuda)}; "
            f"MPS {'yes' if torch_info['mps_available'] else 'no'}"
        )
    else:
        torch_line = "PyTorch not installed (training and Grad-CAM unavailable)"
    return (
        f"<h3>cnn-desktop {html.escape(info['cnn_desktop'])}</h3>"
        "<p>Image classification with convolutional neural networks, locally.</p>"
        f"<p><b>Model:</b> {html.escape(model)}</p>"
        f"<p><b>ONNX Runtime providers</b><ul>{providers}</ul></p>"
        f"<p><b>{torch_line}</b></p>"
        f"<p>Python {html.escape(info['python'])} on {html.escape(info['platform'])}, "
        f"{info['cpu_threads']} CPU threads</p>"
        f"<table>{packages}</table>"
    )

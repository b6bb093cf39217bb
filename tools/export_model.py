#!/usr/bin/env python3
"""Export a PyTorch checkpoint to ONNX for the robot: a thin wrapper over `edge-infer export`.

    tools/export_model.py emotion.pt emotion.onnx --arch mini_xception --input-shape 1x1x64x64 --target jetpack6

``.safetensors`` state_dicts load without pickle; torch.save checkpoints load with ``weights_only=True`` (no pickled
code runs); TorchScript, pickled modules and ``--arch package.module:Class`` need ``--trust-checkpoint``.
Run it with the Python that has edge_infer installed (the project venv: ``.venv/bin/python tools/export_model.py``).
"""

import sys

from edge_infer.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))

"""ament_python package definition: `colcon build` on a robot, `pip install` on a workstation / CI.

Node and tool executables land in lib/edge_infer (setup.cfg) so `ros2 run edge_infer <name>` finds them;
`edge-infer` is the one CLI for the offline tools.
"""

from glob import glob

from setuptools import find_packages, setup

package_name = "edge_infer"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.xml")),
        # the SROS2 policy (edge_infer.policy.xml: one enclave per node process + the one-process enclave)
        ("share/" + package_name + "/config/sros2", glob("config/sros2/*.xml")),
    ],
    install_requires=["setuptools"],
    # the TensorRT backend's CUDA layer on a robot: cuda-python with the platform's CUDA major
    # (JetPack 6 = CUDA 12: pip install .[cuda12]); TensorRT itself comes from JetPack / NVIDIA's index
    # "test": what `colcon test` runs (setuptools >= 72 dropped tests_require and warned on every colcon build)
    extras_require={"cuda12": ["cuda-bindings>=12,<13"], "cuda13": ["cuda-bindings>=13,<14"], "test": ["pytest"],
                    # `edge-infer ui` (the web page + REST API); pinned in requirements-common.txt
                    "ui": ["fastapi>=0.115", "uvicorn>=0.30", "python-multipart>=0.0.18"]},
    # the web page's static files (edge-infer ui): shipped in wheels and colcon installs, not only in a checkout
    package_data={"edge_infer.web": ["static/*"]},
    zip_safe=True,
    maintainer="edge_infer maintainers",
    maintainer_email="edge-infer@example.com",
    description="Multi-model inference on ROS 2 sensor streams with ONNX Runtime and TensorRT",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "edge-infer = edge_infer.cli:main",
            "face_pipeline_node = edge_infer.ros.face_node:main",
            "audio_node = edge_infer.ros.audio_node:main",
            "camera_player = edge_infer.ros.camera_player:main",
            "zoo_fetch = edge_infer.cli:zoo_fetch_main",
            "pipeline = edge_infer.cli:run_main",
            "export_model = edge_infer.cli:export_main",
            "import_model = edge_infer.cli:import_main",
            "sanitize_model = edge_infer.cli:sanitize_main",
            "quantize_model = edge_infer.cli:quantize_main",
            "validate_model = edge_infer.cli:validate_main",
            "inspect_model = edge_infer.cli:inspect_main",
            "convert_all = edge_infer.cli:convert_all_main",
            "build_engine = edge_infer.cli:build_main",
            "benchmark = edge_infer.cli:bench_main",
        ],
    },
)

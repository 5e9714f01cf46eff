"""pip install of the spatial_ros Python package (the ROS-free core, nodes and CLI).

On a robot, `colcon build` installs the same package through CMakeLists.txt
(ament_python_install_package) together with the generated interfaces.
Exact versions tested in CI are pinned in requirements/; the ranges here are what we support.
"""

from setuptools import find_packages, setup

setup(
    name="spatial_ros",
    version="0.1.0",
    description="Spatial language understanding for ROS 2: 3D grounding, distances, dense rewards",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["spatial_ros", "spatial_ros.*", "training", "training.*"]),
    include_package_data=True,
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.10",
        "opencv-python-headless>=4.8",
        "shapely>=2.0",
        "pyyaml>=6.0",
        "rosbags>=0.11",
        "pillow>=10",
        "tqdm>=4.60",
        "rich>=13",
        "pyarrow>=14",
        "matplotlib>=3.7",
        "psutil>=5.9",
    ],
    extras_require={
        # torch is deliberately not listed: install the build for your machine first (README).
        "vlm": ["transformers>=5.0", "tokenizers>=0.22", "safetensors>=0.6", "accelerate>=1.0"],
        # backend: openai (a model served over HTTP: vLLM, SGLang, Ollama, llama.cpp)
        "served": ["httpx>=0.27"],
        "specialists": ["open3d>=0.19", "onnxruntime>=1.18"],
        "training": ["datasets>=3.0", "peft>=0.15", "ray>=2.40", "onnx>=1.16", "onnxscript>=0.2"],
        "test": ["pytest>=8", "hypothesis>=6.100", "mcap-ros2-support>=0.5"],
    },
    entry_points={"console_scripts": ["spatial-ros = spatial_ros.cli:main"]},
)

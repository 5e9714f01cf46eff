"""ros2 launch spatial_ros perception.launch.py [config:=/path/perception.yaml] [model_path:=DIR]

Starts the perception node with config/perception.yaml (the same file `spatial-ros run perception`
reads, checked by the same loader before the node starts). The node configures and activates
itself (autostart) unless autostart:=false, in which case drive it with
`ros2 lifecycle set /perception_node configure|activate`. Arguments: config, namespace,
model_path, autostart (spatial_ros/node_launch.py builds the description for both nodes).
"""

from spatial_ros.node_launch import launch_description


def generate_launch_description():
    return launch_description("perception")

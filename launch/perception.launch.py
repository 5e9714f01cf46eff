"""ros2 launch spatial_ros perception.launch.py [config:=/path/perception.yaml] [model_path:=DIR]

Starts the perception node with config/perception.yaml (the same file `spatial-ros run perception`
reads). The node configures and activates itself (autostart) unless autostart:=false, in which
case drive it with `ros2 lifecycle set /perception_node configure|activate`.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    default_config = PathJoinSubstitution(
        [FindPackageShare("spatial_ros"), "config", "perception.yaml"]
    )
    args = [
        DeclareLaunchArgument("config", default_value=default_config,
                              description="parameter file (ROS 2 YAML)"),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument("model_path", default_value="",
                              description="local model directory ('' = embedded default)"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="configure + activate on start"),
    ]
    node = Node(
        package="spatial_ros",
        executable="perception_node",
        name="perception_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("config"),
            {"model_path": LaunchConfiguration("model_path"),
             "autostart": LaunchConfiguration("autostart")},
        ],
    )
    return LaunchDescription(args + [node])

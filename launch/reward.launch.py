"""ros2 launch spatial_ros reward.launch.py [config:=/path/reward.yaml] [model_path:=DIR]

Starts the reward annotator node with config/reward.yaml (the same file `spatial-ros run reward`
reads; its `goal` is the initial goal). The node configures and activates itself (autostart)
unless autostart:=false, in which case drive it with
`ros2 lifecycle set /reward_annotator configure|activate`. Change the goal at run time with
`ros2 service call /reward_annotator/set_goal spatial_ros/srv/SetGoal "{goal: '...'}"` or by
publishing a std_msgs/String on /reward_annotator/goal.
"""

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    default_config = PathJoinSubstitution(
        [FindPackageShare("spatial_ros"), "config", "reward.yaml"]
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
        executable="reward_annotator",
        name="reward_annotator",
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

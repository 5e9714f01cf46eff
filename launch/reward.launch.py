"""ros2 launch spatial_ros reward.launch.py [config:=/path/reward.yaml] [model_path:=DIR]

Starts the reward annotator node with config/reward.yaml (the same file `spatial-ros run reward`
reads, checked by the same loader before the node starts; its `goal` is the initial goal). The
node configures and activates itself (autostart) unless autostart:=false, in which case drive it
with `ros2 lifecycle set /reward_annotator configure|activate`. Change the goal at run time with
`ros2 service call /reward_annotator/set_goal spatial_ros/srv/SetGoal "{goal: '...'}"` or by
publishing a std_msgs/String on /reward_annotator/goal. Arguments: config, namespace,
model_path, autostart (spatial_ros/node_launch.py builds the description for both nodes).
"""

from spatial_ros.node_launch import launch_description


def generate_launch_description():
    return launch_description("reward")

"""spatial_ros: spatial language understanding for ROS 2 robots.

The ROS-free core (geometry, codecs, specialists, VLM engine, spatial QA, reward, sync, message
conversion) imports without rclpy. The generated interfaces ``spatial_ros.msg`` /
``spatial_ros.srv`` come from the colcon build; in a source checkout they live in
``build/install`` and are merged into this package's path below, so
``from spatial_ros.msg import GroundedObject3D`` works in both.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"

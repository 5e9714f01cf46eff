"""Message codecs for rclpy AND rosbags messages (they share field names).

``msgs`` builds messages of either kind the same way; ``image``, ``pointcloud`` and
``camera_info`` convert between sensor messages and numpy / core types. Nothing here imports rclpy
unless an rclpy ``MessageFactory`` is asked for.
"""

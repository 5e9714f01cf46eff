"""Thin rclpy adapters over the core (the only modules that import rclpy, plus frame_queue, the
ROS-free hand-over they share). sensor_node.SensorNode is the lifecycle base of both nodes."""


def spin_node(node, duration_s: float = 0.0) -> None:
    """Spin ``node`` on a MultiThreadedExecutor (at least 4 threads: a service call being served,
    the sensor callbacks and the stats timer each get one) until Ctrl-C / external shutdown (or
    for ``duration_s`` seconds when > 0), then shut the node down and rclpy with it."""
    import os
    import time

    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    executor = MultiThreadedExecutor(num_threads=max(4, os.cpu_count() or 1),
                                     context=node.context)
    executor.add_node(node)
    try:
        if duration_s > 0:
            end = time.monotonic() + duration_s
            while time.monotonic() < end and rclpy.ok(context=node.context):
                executor.spin_once(timeout_sec=0.1)
        else:
            executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.on_shutdown(None)
        node.destroy_node()
        rclpy.try_shutdown(context=node.context)

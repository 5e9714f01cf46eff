"""Thin rclpy adapters over the core (the only modules that import rclpy)."""


def spin_node(node, duration_s: float = 0.0) -> None:
    """Spin ``node`` on a MultiThreadedExecutor until Ctrl-C / external shutdown (or for
    ``duration_s`` seconds when > 0), then shut the node down and rclpy with it."""
    import time

    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    executor = MultiThreadedExecutor(context=node.context)
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

"""Thin rclpy adapters over the core (the only modules that import rclpy)."""

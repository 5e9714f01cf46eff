"""Geometry: transforms between frames, camera projection, boxes, IoU (ROS-free)."""

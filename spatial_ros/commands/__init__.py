"""Subcommands of the spatial-ros CLI (see spatial_ros/cli.py for the contract)."""

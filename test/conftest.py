"""Shared pytest fixtures. Real data lives at ../shared/data/real (skip when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("SPATIAL_ROS_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Path of ../shared/data/real; skips the test when it is absent (as on users' machines)."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real sample data not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def kitti_dir(real_data: Path) -> Path:
    d = real_data / "kitti_000008"
    if not d.is_dir():
        pytest.skip("kitti_000008 not present")
    return d


@pytest.fixture(scope="session")
def sunrgbd_dir(real_data: Path) -> Path:
    d = real_data / "sunrgbd_000001"
    if not d.is_dir():
        pytest.skip("sunrgbd_000001 not present")
    return d


def _factory_params():
    out = [pytest.param("rosbags", id="rosbags")]
    try:
        import sensor_msgs.msg  # noqa: F401

        out.append(pytest.param("rclpy", id="rclpy"))
    except ImportError:
        out.append(pytest.param("rclpy", id="rclpy", marks=pytest.mark.skip("no sensor_msgs")))
    return out


@pytest.fixture(params=_factory_params())
def factory(request):
    """A MessageFactory for rosbags messages and (when rclpy imports) for rclpy messages."""
    from spatial_ros.io.msgs import MessageFactory

    return MessageFactory.rclpy() if request.param == "rclpy" else MessageFactory.rosbags()

"""Output files are written atomically with the mode a plain open() would give (0666 minus the
umask: 0644 under the usual 022), not mkstemp's private 0600; message types from a bag are
imported only for known message packages."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from spatial_ros.fileio import atomic_path, new_file_mode


@pytest.fixture(params=[0o022, 0o027, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_box_file_and_parquet_get_the_umask_mode(tmp_path, umask):
    import pyarrow as pa

    from spatial_ros.boxfile import BoxFrame, read_box_file, write_box_file
    from spatial_ros.reward.offline import _atomic_write_table

    want = 0o666 & ~umask
    assert new_file_mode() == want
    box = tmp_path / "out" / "pred.jsonl"
    write_box_file(box, [BoxFrame(stamp_ns=1, frame_id="base_link", objects=[])])
    assert _mode(box) == want and read_box_file(box)[0].stamp_ns == 1
    table = tmp_path / "labels.parquet"
    _atomic_write_table(pa.table({"a": [1, 2]}), table)
    assert _mode(table) == want
    if umask == 0o022:
        assert want == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.parquet", "out"]  # no temps


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_message_types_import_only_known_packages(tmp_path, monkeypatch):
    from spatial_ros.commands.play import _msg_class
    from spatial_ros.errors import ConfigError
    from spatial_ros.msg_packages import message_class

    # a module a crafted bag could name; importing it would run its code
    (tmp_path / "evil_msgs").mkdir()
    (tmp_path / "evil_msgs" / "__init__.py").write_text("raise SystemExit('imported!')\n")
    (tmp_path / "evil_msgs" / "msg.py").write_text("raise SystemExit('imported!')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("evil_msgs/msg/Foo", "os/msg/system", "subprocess/msg/Popen"):
        with pytest.raises(ConfigError, match="not one of the known message packages"):
            message_class(name)
        assert _msg_class(name) is None
    assert "evil_msgs" not in sys.modules
    with pytest.raises(ConfigError, match="is not 'package/msg/Name'"):
        message_class("sensor_msgs/srv/SetCameraInfo")
    pytest.importorskip("sensor_msgs")
    from sensor_msgs.msg import PointCloud2

    assert message_class("sensor_msgs/msg/PointCloud2") is PointCloud2
    assert _msg_class("sensor_msgs/msg/NoSuchType") is None

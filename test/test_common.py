"""Plain tests of the ROS-free shared helpers: parameter schema and rate statistics."""

import os

import pytest

from pianist_ros.common.params import check_value
from pianist_ros.common.params import check_values
from pianist_ros.common.params import defaults
from pianist_ros.common.params import markdown_table
from pianist_ros.common.params import Param
from pianist_ros.common.paths import DDS_PROFILE_VARS
from pianist_ros.common.paths import default_dds_profile
from pianist_ros.common.rate import Percentiles
from pianist_ros.common.rate import RateMeter

FPS = Param('fps', 30.0, 'frames per second', min_value=1.0, max_value=120.0)
COUNT = Param('max_num_hands', 2, 'hands', min_value=1, max_value=4)
MODE = Param('backend', 'process', 'encoder backend', choices=('thread', 'process'))
FLAG = Param('loop', False, 'loop the file')


@pytest.mark.parametrize('param,value,ok', [
    (FPS, 30.0, True), (FPS, 1, True), (FPS, 0.5, False), (FPS, 121.0, False),
    (FPS, 'x', False), (FPS, True, False), (FPS, float('nan'), False),
    (COUNT, 4, True), (COUNT, 5, False), (COUNT, 2.0, False), (COUNT, True, False),
    (MODE, 'thread', True), (MODE, 'gpu', False), (MODE, 3, False),
    (FLAG, True, True), (FLAG, 1, False),
])
def test_check_value(param, value, ok):
    err = check_value(param, value)
    assert (err is None) == ok, err
    if not ok:
        assert param.name in err


def test_check_values_reports_first_error_and_ignores_unknown():
    schema = (FPS, COUNT)
    assert check_values(schema, {'fps': 10.0, 'unknown': 'x'}) is None
    assert 'max_num_hands' in check_values(schema, {'fps': 10.0, 'max_num_hands': 9})


def test_schema_rejects_bad_definitions():
    with pytest.raises(ValueError):
        Param('Bad Name', 1, 'x')
    with pytest.raises(ValueError):
        Param('x', 1, '')
    with pytest.raises(ValueError):
        Param('x', 10, 'x', max_value=5)
    with pytest.raises(TypeError):
        Param('x', None, 'x')


def test_defaults_and_table():
    assert defaults((FPS, Param('reconnect.initial_delay', 0.5, 's'))) == {
        'fps': 30.0, 'reconnect_initial_delay': 0.5}
    table = markdown_table((FPS, MODE))
    assert '`fps`' in table and '[1, 120]' in table and 'one of thread, process' in table


def test_rate_meter_and_percentiles():
    meter = RateMeter(window_sec=2.0)
    for i in range(21):
        meter.tick(i * 0.1)
    assert meter.rate(2.0) == pytest.approx(10.0, rel=0.01)
    assert meter.rate(10.0) == 0.0
    pct = Percentiles(size=100)
    assert pct.percentile(50) == 0.0
    for v in range(1, 101):
        pct.add(float(v))
    assert pct.percentile(50) == pytest.approx(50.5)
    assert pct.percentile(99) > 98


def test_gstreamer_init_does_not_break_cpp_exceptions_later():
    """Gst via common.gst, then pybind11 modules that throw C++ exceptions internally.

    Without the gcc-unwinder preload, this exact sequence aborts the process
    (``terminate called after throwing an instance of 'pybind11::attribute_error'``).
    """
    import subprocess
    import sys
    code = (
        'import cv2\n'
        'from pianist_ros.common.gst import gst\n'
        'Gst = gst()\n'
        'assert Gst.ElementFactory.find("jpegenc") is not None\n'
        'import matplotlib.font_manager\n'
        'import rclpy\n'
        'from rclpy.node import Node\n'
        'rclpy.init()\n'
        'node = Node("after_gst")\n'
        'node.destroy_node()\n'
        'rclpy.shutdown()\n'
        'print("survived")\n'
    )
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'survived' in result.stdout


def test_merge_values_accepts_names_and_fields_and_checks_them():
    from pianist_ros.common.params import merge_values
    schema = (FPS, Param('reconnect.initial_delay', 0.5, 'seconds', min_value=0.0))
    assert merge_values(schema, {'fps': 10, 'reconnect.initial_delay': 1.5}) == {
        'fps': 10.0, 'reconnect_initial_delay': 1.5}
    assert merge_values(schema, {'reconnect_initial_delay': 2.0})['reconnect_initial_delay'] \
        == 2.0
    assert merge_values(schema, None) == {'fps': 30.0, 'reconnect_initial_delay': 0.5}
    with pytest.raises(ValueError, match="unknown camera parameter: 'fsp'"):
        merge_values(schema, {'fsp': 10.0}, 'camera')
    with pytest.raises(ValueError, match='fps must be <= 120'):
        merge_values(schema, {'fps': 500.0})


def test_dds_profile_defaults_to_the_packaged_one():
    env = {}
    profile = default_dds_profile(env)
    assert profile.endswith(os.path.join('config', 'fastdds.xml')) and os.path.isfile(profile)
    # Fast DDS 3 (the PyPI wheels, Kilted) reads the new name and warns about the old.
    assert env == {'FASTDDS_DEFAULT_PROFILES_FILE': profile}
    env = {'ROS_DISTRO': 'humble'}  # Fast DDS 2 reads only the old name
    assert default_dds_profile(env) == profile
    assert all(env[var] == profile for var in DDS_PROFILE_VARS)
    with open(profile, encoding='utf-8') as handle:
        assert '<segment_size>8388608</segment_size>' in handle.read()


def test_dds_profile_of_the_operator_or_another_rmw_is_left_alone():
    env = {'FASTRTPS_DEFAULT_PROFILES_FILE': '/etc/my.xml'}
    assert default_dds_profile(env) == '/etc/my.xml'
    assert env == {'FASTRTPS_DEFAULT_PROFILES_FILE': '/etc/my.xml'}
    env = {'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}
    assert default_dds_profile(env) == ''
    assert env == {'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}

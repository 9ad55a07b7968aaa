"""image_meta: the one field table, and the size, composer and parsers derived from it.

(matterport's own compose/parse functions are compared with ours in test_matterport_data.py and
test_matterport_graph.py; these tests pin the table itself and that everything follows it.)
"""
import inspect

import numpy as np
import pytest
import tensorflow as tf

import rsna_detector.mrcnn.model as modellib
from rsna_detector.mrcnn import utils
from rsna_detector.mrcnn.config import Config
from rsna_detector.mrcnn.layers import box_ops
from rsna_detector.mrcnn.ops import image_meta


def test_the_table_is_matterports_layout():
    # [image_id, original_image_shape (3), image_shape (3), window (4), scale, active_class_ids (NUM_CLASSES)]
    assert [(field.name, field.width) for field in image_meta.META_FIELDS] == [
        ("image_id", 1), ("original_image_shape", 3), ("image_shape", 3), ("window", 4), ("scale", 1),
        ("active_class_ids", None)]
    assert image_meta.FIXED_META_SIZE == 12


def test_compose_takes_its_arguments_in_table_order():
    parameters = list(inspect.signature(image_meta.compose_image_meta).parameters)
    assert parameters == [field.name for field in image_meta.META_FIELDS]


@pytest.mark.parametrize("num_classes", [1, 2, 81])
def test_config_meta_size_comes_from_the_table(num_classes):
    assert image_meta.image_meta_size(num_classes) == 12 + num_classes
    assert Config.from_dict({"NUM_CLASSES": num_classes}).IMAGE_META_SIZE == 12 + num_classes


def test_compose_puts_each_field_at_its_offset():
    meta = image_meta.compose_image_meta(5, (10, 20, 3), (64, 64, 3), (1, 2, 3, 4), 0.5, [1, 0, 1])
    np.testing.assert_array_equal(meta, [5, 10, 20, 3, 64, 64, 3, 1, 2, 3, 4, 0.5, 1, 0, 1])
    assert meta.dtype == np.float64  # a float scale makes the vector float64, as matterport
    assert image_meta.compose_image_meta(0, (8, 8, 3), (8, 8, 3), (0, 0, 8, 8), 1, [1]).dtype == np.int64


@pytest.mark.parametrize("field, arguments", [
    ("original_image_shape", (0, (10, 20), (64, 64, 3), (0, 0, 64, 64), 1.0, [1])),
    ("image_shape", (0, (10, 20, 3), (64, 64, 3, 1), (0, 0, 64, 64), 1.0, [1])),
    ("window", (0, (10, 20, 3), (64, 64, 3), (0, 0, 64), 1.0, [1])),
])
def test_compose_names_a_field_of_the_wrong_width(field, arguments):
    with pytest.raises(ValueError, match=f"compose_image_meta: {field}: expected"):
        image_meta.compose_image_meta(*arguments)


def test_the_numpy_and_graph_parsers_read_the_same_fields():
    metas = np.stack([
        image_meta.compose_image_meta(7, (100, 200, 3), (128, 128, 3), (32, 0, 96, 128), 0.64, [1, 1, 0]),
        image_meta.compose_image_meta(3, (512, 256, 3), (256, 256, 3), (0, 64, 256, 192), 0.5, [1, 0, 1]),
    ])
    numpy_fields = image_meta.parse_image_meta(metas)
    graph_fields = image_meta.parse_image_meta_graph(tf.constant(metas))
    names = [field.name for field in image_meta.META_FIELDS]
    assert list(numpy_fields) == list(graph_fields) == names
    assert numpy_fields["window"].tolist() == [[32, 0, 96, 128], [0, 64, 256, 192]]
    assert numpy_fields["active_class_ids"].tolist() == [[1, 1, 0], [1, 0, 1]]
    for field in image_meta.META_FIELDS:
        assert numpy_fields[field.name].dtype == field.dtype
        assert graph_fields[field.name].dtype == tf.float32
        np.testing.assert_allclose(graph_fields[field.name].numpy(), numpy_fields[field.name], rtol=1e-6)


def test_every_public_home_of_the_meta_functions_is_this_module():
    assert utils.compose_image_meta is modellib.compose_image_meta is image_meta.compose_image_meta
    assert utils.parse_image_meta is modellib.parse_image_meta is image_meta.parse_image_meta
    assert box_ops.parse_image_meta_graph is modellib.parse_image_meta_graph is image_meta.parse_image_meta_graph

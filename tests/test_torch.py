"""convbook._torch: the mode, device, label and layer-shape helpers the package shares."""
import pytest
import torch
from torch import nn

from convbook._torch import Layer, ShapeRecorder, check_labels, eval_mode, model_device


def mixed_modes() -> nn.Sequential:
    """Training at the top, one dropout frozen in eval mode (as after a partial .eval())."""
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), nn.Dropout(0.5)).train()
    model[2].eval()
    return model


def test_eval_mode_gives_every_module_its_own_mode_back():
    model = mixed_modes()
    with eval_mode(model) as inside:
        assert inside is model
        assert not any(module.training for module in model.modules())
    assert [module.training for module in model.modules()] == [True, True, True, False]


def test_eval_mode_restores_the_modes_after_an_error_and_rejects_non_modules():
    model = mixed_modes()
    with pytest.raises(ZeroDivisionError), eval_mode(model):
        1 / 0
    assert [module.training for module in model.modules()] == [True, True, True, False]
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got function"):
        with eval_mode(lambda x: x):
            pass


def test_model_device_is_where_the_parameters_are():
    assert model_device(nn.ReLU()) == torch.device("cpu")
    assert model_device(nn.Linear(2, 2, device="meta")) == torch.device("meta")


def test_check_labels_accepts_int64_class_indices_and_lists():
    labels = torch.tensor([0, 2, 1])
    assert check_labels(labels, 3) is labels
    assert torch.equal(check_labels([0, 2], 3, count=2), torch.tensor([0, 2]))
    assert len(check_labels(torch.zeros(0, dtype=torch.int64), 3)) == 0


@pytest.mark.parametrize("labels, num_classes, count, error, message", [
    (torch.tensor([0.0, 1.0]), 3, None, TypeError, r"integer class indices \(int64\).*float32"),
    (torch.tensor([0, 1], dtype=torch.int32), 3, None, TypeError, r"int32.*\.long\(\)"),
    (torch.tensor([True]), 3, None, TypeError, "torch.bool"),
    (torch.tensor([[0], [1]]), 3, None, TypeError, r"shape \(2, 1\)"),
    (torch.tensor([0, 1]), 3, 3, ValueError, "has 2 entries but there are 3 images"),
    (torch.tensor([0, 3]), 3, None, ValueError, r"must lie in \[0, 3\) for 3 classes, found 3"),
    (torch.tensor([-1, 0]), 3, None, ValueError, r"must lie in \[0, 3\).*found -1"),
    (torch.tensor([5, -2]), None, None, ValueError, "class indices >= 0, found -2"),
])
def test_check_labels_names_what_is_wrong(labels, num_classes, count, error, message):
    with pytest.raises(error, match=message) as caught:
        check_labels(labels, num_classes, name="targets", count=count)
    assert str(caught.value).startswith("targets ")


def test_check_labels_reads_no_range_from_an_accelerator():
    """Reading the range would synchronise with the device; there the loss rejects it."""
    far_out = torch.tensor([7], device="meta")
    assert check_labels(far_out, 3) is far_out


def test_shape_recorder_logs_calls_in_order_and_counts_shared_modules_once():
    pool, conv = nn.MaxPool2d(2), nn.Conv2d(1, 2, 3, padding=1)
    model = nn.Sequential(conv, pool, pool)
    with ShapeRecorder([("conv", conv), ("pool", pool)]) as recorder:
        model(torch.zeros(1, 1, 8, 8))
    assert recorder.layers == [Layer("conv", "Conv2d", (1, 2, 8, 8), 20),
                               Layer("pool", "MaxPool2d", (1, 2, 4, 4), 0),
                               Layer("pool", "MaxPool2d", (1, 2, 2, 2), 0)]
    assert not conv._forward_hooks and not conv._forward_pre_hooks  # removed on exit


def test_shape_recorder_names_the_layer_that_failed():
    first, second = nn.Linear(4, 3), nn.Linear(5, 2)
    with ShapeRecorder([("first", first), ("second", second)]) as recorder:
        with pytest.raises(RuntimeError):
            nn.Sequential(first, second)(torch.zeros(2, 4))
    assert [layer.name for layer in recorder.layers] == ["first"]
    assert recorder.running == ("second", second, (2, 3))

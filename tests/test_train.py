"""Tests of convbook.train: the loop learns, reports in the masked format, fails loudly."""
import configparser
import math
import platform
import re
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import convbook as cb
from convbook.train import evaluate, fit, load_checkpoint, predict, save_checkpoint

SANITIZE_CFG = Path(__file__).with_name("nbval_sanitize.cfg")


def toy_task(n=800, seed=0):
    """Four classes of noisy 1×8×8 images: class k has a brighter k-th 4×4 quadrant."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    quadrants = torch.zeros(4, 1, 8, 8)
    for k in range(4):
        row, col = divmod(k, 2)
        quadrants[k, :, 4 * row:4 * row + 4, 4 * col:4 * col + 4] = 1.0
    return torch.randn(n, 1, 8, 8, generator=g) + quadrants[y], y


def tiny_net():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 4))


def loaders(batch_size=50, shuffle=True):
    X, y = toy_task()
    train = DataLoader(TensorDataset(X[:600], y[:600]), batch_size=batch_size, shuffle=shuffle)
    val = DataLoader(TensorDataset(X[600:], y[600:]), batch_size=100)
    return train, val


def sanitize(text):
    """Apply tests/nbval_sanitize.cfg the way nbval does."""
    cfg = configparser.ConfigParser()
    cfg.read(SANITIZE_CFG)
    for section in cfg.sections():
        text = re.sub(cfg[section]["regex"], cfg[section]["replace"], text)
    return text


def test_fit_learns_with_dataloader():
    cb.seed_everything(0)
    train, val = loaders()
    history = fit(tiny_net(), train, val, epochs=4, lr=0.1, device="cpu", verbose=False)
    assert list(history.columns) == [
        "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "examples_per_s",
    ]
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert history["val_acc"].iloc[-1] >= 0.85
    assert (history["seconds"] > 0).all() and (history["examples_per_s"] > 0).all()


def test_fit_learns_with_tensor_loader():
    cb.seed_everything(0)
    X, y = toy_task()
    train = cb.data.TensorLoader(X[:600], y[:600], 50, shuffle=True, seed=0)
    val = cb.data.TensorLoader(X[600:], y[600:], 100)
    history = fit(tiny_net(), train, val, epochs=4, lr=0.1, device="cpu", verbose=False)
    assert history["val_acc"].iloc[-1] >= 0.85


def _dtype_seen_by_first_layer(model, monkeypatch, native_bf16):
    """Train one epoch with amp=True on a CPU said to have (or lack) native bfloat16;
    return the dtype of the convolution's output."""
    monkeypatch.setattr(cb.train, "cpu_has_native_bfloat16", lambda: native_bf16)
    seen = []
    model[0].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    train, _ = loaders()
    fit(model, train, epochs=1, lr=0.1, amp=True, device="cpu", verbose=False)
    return seen[0]


def test_amp_uses_bfloat16_on_a_cpu_that_computes_it_natively(monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no fallback warning here
        assert _dtype_seen_by_first_layer(tiny_net(), monkeypatch, True) == torch.bfloat16


def test_amp_on_a_cpu_without_native_bfloat16_warns_and_stays_float32(monkeypatch):
    with pytest.warns(UserWarning, match="no native bfloat16.*training in float32"):
        dtype = _dtype_seen_by_first_layer(tiny_net(), monkeypatch, False)
    assert dtype == torch.float32


def test_fp16_with_a_grad_scaler_learns(monkeypatch):
    """fit's CUDA path (fp16 autocast and a GradScaler), run on the CPU."""
    monkeypatch.setattr(cb.train, "amp_dtype", lambda device, amp: torch.float16 if amp else None)
    cb.seed_everything(0)
    train, val = loaders()
    model = tiny_net()
    seen = []
    model[0].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    history = fit(model, train, val, epochs=3, lr=0.1, amp=True, device="cpu", verbose=False)
    assert seen[0] == torch.float16 and model[0].weight.dtype == torch.float32
    assert history["val_acc"].iloc[-1] >= 0.8


def test_native_bfloat16_detection_matches_the_cpu_flags():
    cpuinfo = Path("/proc/cpuinfo")
    if platform.machine().lower() not in {"x86_64", "amd64"} or not cpuinfo.exists():
        pytest.skip("the flags are x86 Linux's")
    flags = cpuinfo.read_text().split()
    expected = "avx512_bf16" in flags or "amx_tile" in flags
    assert cb.train.cpu_has_native_bfloat16() == expected


def test_fit_with_adam_and_bf16_autocast_learns(monkeypatch):
    monkeypatch.setattr(cb.train, "cpu_has_native_bfloat16", lambda: True)
    cb.seed_everything(0)
    train, val = loaders()
    model = tiny_net()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    history = fit(model, train, val, epochs=3, optimizer=optimizer, amp=True, device="cpu",
                  verbose=False)
    assert history["val_acc"].iloc[-1] >= 0.8


def test_without_validation_data_val_columns_are_nan():
    train, _ = loaders()
    history = fit(tiny_net(), train, epochs=2, lr=0.1, device="cpu", verbose=False)
    assert len(history) == 2
    assert history["val_loss"].isna().all() and history["val_acc"].isna().all()


def test_same_seed_gives_identical_history():
    def run():
        cb.seed_everything(123)
        train, val = loaders()
        history = fit(tiny_net(), train, val, epochs=2, lr=0.1, device="cpu", verbose=False)
        return history[["train_loss", "train_acc", "val_loss", "val_acc"]].values.tolist()

    assert run() == run()


def test_epoch_line_format_is_masked_by_nbval_sanitizer(capsys):
    cb.seed_everything(0)
    train, val = loaders()
    fit(tiny_net(), train, val, epochs=2, lr=0.1, device="cpu")
    first = capsys.readouterr()
    cb.seed_everything(0)
    fit(tiny_net(), train, val, epochs=2, lr=0.1, device="cpu")
    second = capsys.readouterr()
    lines = first.out.splitlines()
    pattern = (r"epoch [12]/2  train loss \d\.\d{4} acc \d\.\d{4} \| "
               r"val loss \d\.\d{4} acc \d\.\d{4} \| <T> s  <N> ex/s")
    assert len(lines) == 2
    assert all(re.fullmatch(pattern, sanitize(line)) for line in lines), lines
    assert sanitize(first.out) == sanitize(second.out)
    assert first.err == "" and second.err == ""


def test_epoch_line_without_validation_and_wide_epoch_numbers(capsys):
    X, y = toy_task(n=100)
    fit(tiny_net(), [(X, y)], epochs=10, lr=0.01, device="cpu")
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"epoch  1/10  train loss \d\.\d{4} acc \d\.\d{4} \| <T> s  <N> ex/s",
                        sanitize(lines[0]))
    assert lines[-1].startswith("epoch 10/10  ")


def test_verbose_false_prints_nothing(capsys):
    train, val = loaders()
    fit(tiny_net(), train, val, epochs=1, lr=0.1, device="cpu", log_every=2, verbose=False)
    assert capsys.readouterr() == ("", "")


def test_log_every_prints_mean_loss_of_last_batches(capsys):
    train, _ = loaders(batch_size=50, shuffle=False)  # 12 batches
    model = tiny_net()
    with torch.no_grad():
        batch_losses = [nn.functional.cross_entropy(model(X), y).item() for X, y in train]
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)
    fit(model, train, epochs=1, optimizer=frozen, device="cpu", log_every=4)
    lines = capsys.readouterr().out.splitlines()
    assert [line[:13] for line in lines[:2]] == ["  batch    4 ", "  batch    8 "]
    assert float(lines[0].split()[-1]) == pytest.approx(sum(batch_losses[:4]) / 4, abs=1e-4)
    assert float(lines[1].split()[-1]) == pytest.approx(sum(batch_losses[4:8]) / 4, abs=1e-4)
    assert lines[3].startswith("epoch 1/1  ") and len(lines) == 4


class NanAtCall(nn.Module):
    """Cross-entropy that returns NaN on its ``bad_call``-th call (counting from 1)."""

    def __init__(self, bad_call):
        super().__init__()
        self.bad_call, self.calls = bad_call, 0

    def forward(self, logits, y):
        self.calls += 1
        loss = nn.functional.cross_entropy(logits, y)
        return loss * math.nan if self.calls == self.bad_call else loss


@pytest.mark.parametrize("log_every", [None, 3])
def test_non_finite_loss_names_epoch_and_batch(log_every):
    train, _ = loaders(batch_size=100)  # 6 batches per epoch
    with pytest.raises(FloatingPointError, match=r"epoch 2, batch 4 \(counting from 1\)"):
        fit(tiny_net(), train, epochs=3, lr=0.1, loss_fn=NanAtCall(10), device="cpu",
            log_every=log_every, verbose=False)


def test_diverging_learning_rate_raises():
    train, _ = loaders()
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch \d+"):
        fit(tiny_net(), train, epochs=1, lr=1e30, device="cpu", verbose=False)


@pytest.mark.parametrize("lr", [0.1, 1e30])  # trains; diverges and raises
def test_fit_moves_the_model_back_to_where_it_came_from(monkeypatch, lr):
    """Chapters run a trained model on CPU tensors, so fit returns it to its own device
    after training elsewhere, also when training stops with an error."""
    moves, move = [], nn.Module.to
    monkeypatch.setattr(nn.Module, "to", lambda self, *args, **kwargs: (
        moves.append((self, torch.device(*args))), move(self, *args, **kwargs))[1])
    model, (train, _) = tiny_net(), loaders()
    try:
        fit(model, train, epochs=1, lr=lr, device="cpu", verbose=False)
    except FloatingPointError:
        assert lr == 1e30
    assert [device for module, device in moves if module is model] == [
        torch.device("cpu"), torch.device("cpu")]


def test_scheduler_is_stepped_once_per_batch():
    train, _ = loaders(batch_size=100)  # 6 batches per epoch
    model = tiny_net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: seen.append(step) or 0.9**step)
    fit(model, train, epochs=2, optimizer=optimizer, scheduler=scheduler, device="cpu",
        verbose=False)
    assert seen == list(range(13))  # step 0 at construction, then one per batch
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.9**12)


@pytest.mark.parametrize("recipe, options, key", [
    (cb.train.one_cycle_sgd, {"nesterov": True}, "momentum"),
    (cb.train.one_cycle_adamw, {}, "beta1"),
])
def test_one_cycle_peaks_at_lr_after_30_percent_and_cycles_momentum(recipe, options, key):
    trace = cb.train.trace_one_cycle(recipe, 0.2, 100, **options)
    assert list(trace.columns) == ["lr", key] and len(trace) == 100
    rates, momenta = trace["lr"], trace[key]
    peak = rates.idxmax()
    assert peak == 29 and rates[peak] == pytest.approx(0.2)
    assert rates[0] == pytest.approx(0.2 / 25) and rates.iloc[-1] < 1e-5
    assert momenta[0] == pytest.approx(0.95) and momenta[peak] == pytest.approx(0.85)
    assert momenta.iloc[-1] == pytest.approx(0.95, abs=1e-3)


def test_one_cycle_recipes_set_weight_decay_and_nesterov():
    params = [nn.Parameter(torch.zeros(1))]
    sgd, _ = cb.train.one_cycle_sgd(params, 0.1, 10)
    assert (sgd.defaults["weight_decay"], sgd.defaults["nesterov"]) == (5e-4, False)
    assert cb.train.one_cycle_sgd(params, 0.1, 10, nesterov=True)[0].defaults["nesterov"]
    adamw, _ = cb.train.one_cycle_adamw(params, 0.01, 10)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["weight_decay"] == 0.05


@pytest.mark.parametrize("kwargs, error, message", [
    ({"epochs": 1}, ValueError, "pass an optimizer, or lr"),
    ({"epochs": 1, "lr": 0.1, "optimizer": "sgd"}, ValueError, "not both"),
    ({"epochs": 0, "lr": 0.1}, ValueError, "epochs must be a positive int"),
])
def test_fit_rejects_bad_arguments(kwargs, error, message):
    train, _ = loaders()
    with pytest.raises(error, match=message):
        fit(tiny_net(), train, device="cpu", verbose=False, **kwargs)


def test_fit_rejects_non_module_and_empty_data():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        fit(lambda x: x, [], epochs=1, lr=0.1)
    with pytest.raises(ValueError, match="no batches"):
        fit(tiny_net(), [], epochs=1, lr=0.1, device="cpu", verbose=False)


def test_evaluate_matches_a_direct_computation():
    X, y = toy_task(n=300)
    model = tiny_net()
    result = evaluate(model, DataLoader(TensorDataset(X, y), batch_size=64))
    with torch.no_grad():
        logits = model(X)
    assert result["loss"] == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert result["accuracy"] == pytest.approx((logits.argmax(1) == y).float().mean().item())


def test_evaluate_restores_training_mode():
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 4))
    X, y = toy_task(n=100)
    evaluate(model, [(X, y)])
    assert model.training
    model.eval()
    evaluate(model, [(X, y)])
    assert not model.training


def test_predict_in_batches_equals_one_forward_pass():
    X, _ = toy_task(n=250)
    model = tiny_net()
    with torch.no_grad():
        expected = model(X).argmax(dim=1)
    predicted = predict(model, X, batch_size=64)
    assert predicted.dtype == torch.int64 and predicted.device.type == "cpu"
    assert torch.equal(predicted, expected)


@pytest.mark.parametrize("cuda, mps, expected", [
    (True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu"),
])
def test_best_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert cb.train.best_device() == torch.device(expected)


def test_checkpoint_round_trip_is_atomic(tmp_path):
    model = tiny_net()
    path = save_checkpoint(model, tmp_path / "ckpt" / "tiny.pt", epoch=3, history={"loss": [0.5]})
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.pt"]
    other = tiny_net()
    assert not torch.equal(other[0].weight, model[0].weight)
    assert load_checkpoint(other, path) == {"epoch": 3, "history": {"loss": [0.5]}}
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)


def test_failed_save_keeps_old_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = save_checkpoint(tiny_net(), tmp_path / "tiny.pt", note="old")

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tiny_net(), path, note="new")
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.pt"]
    assert load_checkpoint(tiny_net(), path) == {"note": "old"}


def test_checkpoint_metadata_must_load_with_weights_only(tmp_path):
    with pytest.raises(TypeError, match=r"metadata extra\[0\] is a object"):
        save_checkpoint(tiny_net(), tmp_path / "x.pt", extra=[object()])
    assert list(tmp_path.iterdir()) == []


def test_load_checkpoint_names_what_differs(tmp_path):
    path = save_checkpoint(nn.Linear(4, 3), tmp_path / "linear.pt")
    with pytest.raises(ValueError, match="holds a Linear, but the model is a Sequential"):
        load_checkpoint(tiny_net(), path)
    shapes = r"size mismatch for weight: .*\[3, 4\]\) from checkpoint, .* model is .*\[5, 4\]"
    with pytest.raises(RuntimeError, match=shapes):
        load_checkpoint(nn.Linear(4, 5), path)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "bias"'):
        load_checkpoint(nn.Linear(4, 3, bias=False), path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(nn.Linear(4, 3), tmp_path / "absent.pt")
    torch.save(nn.Linear(4, 3).state_dict(), tmp_path / "weights_only.pt")
    with pytest.raises(ValueError, match="is not a convbook checkpoint"):
        load_checkpoint(nn.Linear(4, 3), tmp_path / "weights_only.pt")


# ------------------------------------------------------------------ bad input


def test_numpy_metadata_is_stored_as_plain_python_values(tmp_path):
    import numpy as np

    metadata = {
        "best_acc": np.float64(0.91), "name": np.str_("lenet"), "epochs": np.int64(3),
        "improved": np.bool_(True), "curve": [np.float32(0.5), np.float64(0.25)],
        "nested": {"lr": np.float64(0.1)},
    }
    path = save_checkpoint(tiny_net(), tmp_path / "np.pt", **metadata)
    loaded = load_checkpoint(tiny_net(), path)
    assert loaded == {"best_acc": 0.91, "name": "lenet", "epochs": 3, "improved": True,
                      "curve": [0.5, 0.25], "nested": {"lr": 0.1}}
    assert [type(loaded[k]) for k in ("best_acc", "name", "epochs", "improved")] == [
        float, str, int, bool]
    assert type(loaded["curve"][0]) is float and type(loaded["nested"]["lr"]) is float


def test_numpy_arrays_in_metadata_are_refused_with_the_fix(tmp_path):
    import numpy as np

    with pytest.raises(TypeError, match=r"metadata curve is a ndarray.*\.tolist\(\)"):
        save_checkpoint(tiny_net(), tmp_path / "x.pt", curve=np.zeros(3))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("labels, error, message", [
    (lambda y: y.float(), TypeError,
     r"train_data batch 1: labels must be integer class indices \(int64\).*torch.float32"),
    (lambda y: y.int(), TypeError, r"labels must be integer .*torch.int32.*\.long\(\)"),
    (lambda y: y > 1, TypeError, r"labels must be integer .*torch.bool"),
    (lambda y: y + 1, ValueError, r"train_data batch 1: labels must lie in \[0, 4\) .* found 4"),
    (lambda y: y - 1, ValueError, r"labels must lie in \[0, 4\) .* found -1"),
])
def test_fit_checks_labels_where_they_enter(labels, error, message):
    X, y = toy_task(n=100)
    with pytest.raises(error, match=message):
        fit(tiny_net(), [(X, labels(y))], epochs=1, lr=0.01, device="cpu", verbose=False)


def test_fit_checks_validation_labels_too():
    X, y = toy_task(n=100)
    with pytest.raises(ValueError, match=r"val_data batch 1: labels must lie in \[0, 4\)"):
        fit(tiny_net(), [(X, y)], [(X, y + 4)], epochs=1, lr=0.01, device="cpu",
            verbose=False)


def test_keyboard_interrupt_keeps_the_finished_epochs():
    class InterruptAt(nn.Module):
        def __init__(self, call):
            super().__init__()
            self.call, self.calls = call, 0

        def forward(self, logits, y):
            self.calls += 1
            if self.calls == self.call:
                raise KeyboardInterrupt
            return nn.functional.cross_entropy(logits, y)

    train, _ = loaders(batch_size=100)  # 6 batches per epoch
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_net(), train, epochs=5, lr=0.1, loss_fn=InterruptAt(15), device="cpu")
    assert cb.train.last_history()["epoch"].tolist() == [1, 2]


def test_reestimated_averages_are_the_plain_mean_and_variance_of_the_images():
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Dropout(0.5), nn.Flatten(), nn.Linear(48, 2))
    model[0].running_mean.fill_(7.0)  # stale averages, as training could leave them
    images = torch.randn(10, 3, 4, 4) * 2 + 1
    ran_in_training_mode = []
    model[1].register_forward_hook(lambda m, i, o: ran_in_training_mode.append(m.training))
    fresh = cb.train.reestimate_running_statistics(model, images, batch_size=10)
    torch.testing.assert_close(fresh[0].running_mean, images.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(fresh[0].running_var, images.var(dim=(0, 2, 3)))
    assert ran_in_training_mode == [False] and not fresh.training  # dropout stayed off
    assert model[0].running_mean.eq(7.0).all()  # the model itself is untouched
    halves = cb.train.reestimate_running_statistics(model, images, batch_size=5)
    torch.testing.assert_close(halves[0].running_mean, images.mean(dim=(0, 2, 3)))


def test_reestimating_without_batch_norm_or_images_is_an_error():
    with pytest.raises(ValueError, match="Linear has no batch norm layer"):
        cb.train.reestimate_running_statistics(nn.Linear(2, 2), torch.randn(4, 2))
    with pytest.raises(ValueError, match="images is empty"):
        cb.train.reestimate_running_statistics(nn.BatchNorm1d(2), torch.randn(0, 2))

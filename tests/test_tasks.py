"""Built-in tasks: real shipped data, honest splits, preprocessing fitted on train only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from automl_rnn.compose import compose_job
from automl_rnn.errors import UserError
from automl_rnn.plugins import load_registry
from automl_rnn_plugins.tasks import airline, ucr

REGISTRY = load_registry(use_entry_points=True)


def prepare(name: str, params: dict | None = None, **options):
    task = REGISTRY.tasks[name]
    return task.prepare(task.options(**options), params or {})


def fingerprints(dataset) -> set[bytes]:
    return {x.tobytes() for x in dataset.xs}


@pytest.mark.parametrize(
    ("name", "n_train_file", "n_test", "length", "channels", "classes"),
    [("gunpoint", 50, 150, 150, 1, 2), ("italypower", 67, 1029, 24, 1, 2), ("basicmotions", 40, 40, 100, 6, 4)],
)
def test_ucr_splits_match_the_archive_and_are_disjoint(name, n_train_file, n_test, length, channels, classes):
    data = prepare(name)
    assert len(data.train) + len(data.val) == n_train_file
    assert len(data.test) == n_test
    assert data.input_size == channels
    assert {x.shape for x in data.train.xs} == {(length, channels)}
    assert len(data.summary["classes"]) == classes
    # every class is in validation, and no case is in two splits
    assert set(np.unique(data.val.ys)) == set(range(classes))
    assert not fingerprints(data.train) & fingerprints(data.val)
    assert len(data.val) == pytest.approx(0.2 * n_train_file, abs=classes)


def test_ucr_model_standardises_with_train_statistics_only():
    data = prepare("basicmotions")  # raw sensor values, not z-normalised per series
    model = data.build_model(REGISTRY.architectures["gru"].build(6, {"hidden_size": 8, "num_layers": 1, "dropout": 0.0}))
    train_steps = np.concatenate(data.train.xs)
    seen_steps = np.concatenate(data.train.xs + data.val.xs + data.test.xs)
    torch.testing.assert_close(model.scaler.mean, torch.tensor(train_steps.mean(axis=0)))
    torch.testing.assert_close(model.scaler.std, torch.tensor(train_steps.std(axis=0)))
    assert not np.allclose(seen_steps.mean(axis=0), train_steps.mean(axis=0), atol=1e-3)


def test_ucr_patch_reads_the_series_several_steps_at_a_time():
    assert "patch" in REGISTRY.tasks["gunpoint"].space()
    data = prepare("basicmotions", {"patch": 4})  # 100 steps of 6 channels
    assert (data.input_size, data.backbone_input_size, data.summary["patch"]) == (6, 24, 4)
    backbone = REGISTRY.architectures["gru"].build(24, {"hidden_size": 8, "num_layers": 1, "dropout": 0.0})
    seen = []
    backbone.register_forward_hook(lambda module, args, out: seen.append(args[0].shape))
    model = data.build_model(backbone).eval()
    x = torch.from_numpy(np.stack(data.test.xs[:2]))
    logits = model(x)
    assert logits.shape == (2, 4) and seen == [(2, 25, 24)]
    # a padded batch: padding never changes the logits of the shorter sequence (87 steps)
    short = x[1, :87]
    padded = model(torch.stack([x[0], torch.cat([short, torch.full((13, 6), 99.0)])]), torch.tensor([100, 87]))
    torch.testing.assert_close(padded[1], model(short[None])[0])
    with pytest.raises(UserError, match="patch=0"):
        prepare("gunpoint", {"patch": 0})

def test_ucr_noise_jitters_training_inputs_only():
    assert ucr.FixedUcrOptions().noise == ucr.UcrOptions().noise == 0.0  # off unless a config sets it
    assert [compose_job([f"task={name}"])[0]["task"]["noise"] for name in ("italypower", "gunpoint")] == [0.5, 0.0]
    data, plain = prepare("italypower", noise=0.5), prepare("italypower")
    assert (data.summary["noise"], plain.summary["noise"]) == (0.5, 0.0)
    torch.manual_seed(0)
    model = data.build_model(REGISTRY.architectures["gru"].build(1, {"hidden_size": 8, "num_layers": 1, "dropout": 0.0}))
    reference = plain.build_model(model.backbone)
    reference.head.load_state_dict(model.head.state_dict())
    x = torch.from_numpy(np.stack(data.test.xs[:4]))
    seen = []
    model.backbone.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    model.eval(), reference.eval()
    torch.testing.assert_close(model(x), reference(x))  # evaluation reads the input as given
    model.train()
    model(x), model(x)
    jitter = seen[-1] - model.scaler(x)
    assert 0.4 < jitter.std().item() < 0.6  # in units of the training split's std
    assert not torch.equal(seen[-1], seen[-2])  # fresh noise at every step
    with pytest.raises(UserError, match="noise=-0.1"):
        prepare("gunpoint", noise=-0.1)



def test_generic_ucr_task_reads_any_bundled_dataset_and_decodes_labels():
    assert {"GunPoint", "ItalyPowerDemand", "BasicMotions", "ArrowHead"} <= set(ucr.bundled_datasets())
    data = prepare("ucr", dataset="ArrowHead")
    assert data.summary["dataset"] == "ArrowHead"
    assert len(data.test) == 175
    labels = data.decode(np.eye(len(data.summary["classes"]))[[0, 2, 1]])
    assert list(labels) == [data.summary["classes"][i] for i in (0, 2, 1)]


def test_generic_ucr_task_explains_a_missing_or_misspelt_name_without_network():
    with pytest.raises(UserError, match="task.dataset=<Name>"):
        prepare("ucr")
    with pytest.raises(UserError, match="did you mean task.dataset=GunPoint"):
        prepare("ucr", dataset="gunpoint")


def test_generic_ucr_task_keeps_the_real_download_path(monkeypatch, tmp_path):
    # Names that are not bundled go to sktime's downloader; with no network it fails and
    # the user gets one paragraph naming the dataset and the offline alternatives.
    calls = []

    def no_network(name, split, extract_path):
        calls.append((name, split, extract_path))
        raise OSError("network is unreachable")

    monkeypatch.setattr(ucr, "_load_split", no_network)
    with pytest.raises(UserError, match="neither bundled with sktime nor downloadable.*GunPoint"):
        prepare("ucr", dataset="ECG5000", extract_path=str(tmp_path))
    assert calls == [("ECG5000", "train", str(tmp_path))]


def test_airline_splits_in_time_order_with_the_last_12_months_as_test():
    series = airline.load_series()
    assert len(series) == 144
    data = prepare("airline", {"window": 36})
    test_targets = np.stack(data.test.ys)
    assert test_targets.shape == (1, 12)
    np.testing.assert_allclose(test_targets[0], series[-12:], rtol=1e-6)
    val_targets = np.stack(data.val.ys)
    train_targets = np.stack(data.train.ys)
    # validation targets lie in the 24 months before the test span, training targets before them
    assert set(np.round(val_targets.ravel(), 3)) <= set(np.round(series[-36:-12], 3))
    assert set(np.round(train_targets.ravel(), 3)) <= set(np.round(series[:-36], 3))
    assert len(data.train) == 144 - 36 - 36 - 12 + 1
    assert len(data.val) == 24 - 12 + 1


def test_airline_scaling_is_fitted_before_the_validation_span():
    series = airline.load_series()
    scale_full = airline.fit_scale(series, 36, 12)
    data = prepare("airline", {"window": 36})
    model = data.build_model(REGISTRY.architectures["gru"].build(1, {"hidden_size": 8, "num_layers": 1, "dropout": 0.0}))
    assert float(model.scale) == pytest.approx(airline.fit_scale(series[:-36], 36, 12), rel=1e-6)
    assert float(model.scale) != pytest.approx(scale_full, rel=1e-3)
    # changing the validation and test months changes nothing the model was fitted with
    perturbed = series.copy()
    perturbed[-36:] *= 3.0
    other = airline.forecast_data(perturbed, airline.AirlineOptions(), 36)
    other_model = other.build_model(REGISTRY.architectures["gru"].build(1, {"hidden_size": 8, "num_layers": 1, "dropout": 0.0}))
    assert float(other_model.scale) == pytest.approx(float(model.scale))


def test_airline_forecasts_are_on_the_original_scale():
    data = prepare("airline", {"window": 24})
    torch.manual_seed(0)
    model = data.build_model(REGISTRY.architectures["lstm"].build(1, {"hidden_size": 8, "num_layers": 1, "dropout": 0.0})).eval()
    x = torch.tensor(np.stack(data.val.xs))
    with torch.no_grad():
        forecast = model(x, None)
    assert forecast.shape == (len(data.val), 12)
    # an untrained model forecasts the level reference, in passengers, not in logs: the
    # window's geometric mean level, for every month
    series = x[..., 0].double()
    expected = series.log().mean(dim=1).exp()[:, None].expand(-1, 12)
    assert torch.allclose(forecast.double(), expected, rtol=1e-4)
    assert forecast.min() > 100  # passengers (thousands), never logs
    # with the seasonal-drift reference: the last season again, times the growth between the
    # window's last two seasons
    drift = prepare("airline", {"window": 24}, reference="seasonal_drift")
    torch.manual_seed(0)
    model = drift.build_model(REGISTRY.architectures["lstm"].build(1, {"hidden_size": 8, "num_layers": 1, "dropout": 0.0})).eval()
    with torch.no_grad():
        forecast = model(x, None)
    growth = series[:, -12:].log().mean(dim=1) - series[:, -24:-12].log().mean(dim=1)
    assert torch.allclose(forecast.double(), series[:, -12:] * growth.exp()[:, None], rtol=1e-4)


def test_airline_rejects_a_window_that_leaves_no_training_data():
    with pytest.raises(UserError, match="leaves no training window"):
        prepare("airline", {"window": 120})


def test_airline_reference_needs_enough_seasons_in_the_window():
    with pytest.raises(UserError, match="needs a window of 2 season"):
        prepare("airline", {"window": 12}, reference="seasonal_drift")
    with pytest.raises(UserError, match="is not one of"):
        prepare("airline", {"window": 24}, reference="arima")
    # the level reference needs no full season
    assert len(prepare("airline", {"window": 12}, reference="level").test) == 1

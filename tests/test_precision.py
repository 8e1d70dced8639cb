"""dtype="auto": the CPU / GPU rule, the measurement and its stored decision."""

from __future__ import annotations

import json
import os
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.base import clone

from hybridml import KerasEmbeddingTransformer
from hybridml.embed import calibrate

BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")

AMX = calibrate.CpuFacts("Fake Xeon with AMX", frozenset({"amx_bf16", "avx512_bf16"}))
EPYC = calibrate.CpuFacts("Fake EPYC", frozenset({"avx512_bf16", "avx512_vnni"}))
OLD = calibrate.CpuFacts("Fake old Xeon", frozenset({"avx512_vnni"}))
TEXTS = ["the cat sat on the mat", "a good movie", "this film was so boring"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Own cache folder, empty memo, measurement allowed, no bfloat16 units."""
    monkeypatch.setenv("HYBRIDML_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HYBRIDML_CALIBRATE", raising=False)
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: OLD)
    calibrate._forget()
    yield
    calibrate._forget()


class FakeRun:
    """``run(dtype)`` on a fake clock: each call costs ``cost[dtype]`` seconds."""

    def __init__(self, monkeypatch, f32=1.0, bf16=0.5, noise=0.0):
        self.now, self.calls = 0.0, []
        self.cost = {"float32": f32, "bfloat16": bf16}
        rng = np.random.default_rng(0)
        self.ref = rng.normal(size=(16, 8))
        self.low = self.ref + noise * rng.normal(size=self.ref.shape)
        monkeypatch.setattr(calibrate, "_timer", lambda: self.now)
        monkeypatch.setattr(calibrate, "_wall", lambda: self.now)

    def __call__(self, dtype):
        self.calls.append(dtype)
        self.now += self.cost[dtype]
        return self.ref if dtype == "float32" else self.low


def decide(run, **kw):
    args = {"backend": "tensorflow", "digest": lambda: "w1", "threads": 2, **kw}
    return calibrate.decide(run=run, **args)


def never(dtype):
    raise AssertionError(f"measured {dtype} where nothing should be timed")


# ------------------------------------------------------------------ the rule
def test_no_bfloat16_units_picks_float32_without_timing_anything():
    d = decide(never)
    assert d.dtype == "float32" and d.measured is None
    assert "no bfloat16 units" in d.reason and "Fake old Xeon" in d.reason


@pytest.mark.parametrize("cpu", [AMX, EPYC], ids=["amx", "avx512_bf16"])
def test_a_chip_with_bfloat16_units_is_measured(monkeypatch, cpu):
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: cpu)
    run = FakeRun(monkeypatch, f32=1.0, bf16=1.7)  # the EPYC's JAX-like 0.6x
    d = decide(run)
    assert d.dtype == "float32" and run.calls and "0.59x" in d.reason


def test_a_small_model_is_not_measured(monkeypatch):
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    d = decide(never, size=lambda: calibrate.MIN_PARAMS - 1)
    assert d.dtype == "float32" and "too few" in d.reason
    run = FakeRun(monkeypatch)
    assert decide(run, size=lambda: calibrate.MIN_PARAMS).dtype == "bfloat16"


def test_amx_faster_and_accurate_picks_bfloat16(monkeypatch):
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    run = FakeRun(monkeypatch, f32=1.0, bf16=0.5)
    d = decide(run)
    assert d.dtype == "bfloat16"
    assert d.measured == {
        "float32_s": 1.0,
        "bfloat16_s": 0.5,
        "float32_wall_s": 1.0,
        "bfloat16_wall_s": 0.5,
        "mean_cos": 1.0,
    }
    assert "2.00x" in d.reason
    # one untimed run each, then REPEATS timed runs alternating
    assert run.calls == ["float32", "bfloat16"] * (1 + calibrate.REPEATS)


def test_faster_but_inaccurate_picks_float32(monkeypatch):
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    d = decide(FakeRun(monkeypatch, f32=1.0, bf16=0.5, noise=0.05))
    assert d.dtype == "float32"
    assert d.measured["mean_cos"] < calibrate.MIN_MEAN_COSINE
    assert "mean cosine" in d.reason


@pytest.mark.parametrize("bf16", [0.95, 1.0, 1.6])
def test_slower_or_barely_faster_picks_float32(monkeypatch, bf16):
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    d = decide(FakeRun(monkeypatch, f32=1.0, bf16=bf16))
    assert d.dtype == "float32" and "not faster" in d.reason


def test_faster_in_cpu_time_but_slower_in_wall_time_picks_float32(monkeypatch):
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    run = FakeRun(monkeypatch, f32=1.0, bf16=0.5)
    wall = {"t": 0.0}

    def slow_wall():  # a bfloat16 run takes 1.5 wall-s, a float32 run 0.5
        wall["t"] += 1.5 if run.calls and run.calls[-1] == "bfloat16" else 0.5
        return wall["t"]

    monkeypatch.setattr(calibrate, "_wall", slow_wall)
    d = decide(run)
    assert d.measured["bfloat16_s"] == 0.5 and d.dtype == "float32"
    assert "not faster" in d.reason


def test_nan_vectors_in_bfloat16_pick_float32(monkeypatch):
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    run = FakeRun(monkeypatch, f32=1.0, bf16=0.1)
    run.low = np.full_like(run.ref, np.nan)
    assert decide(run).dtype == "float32"


def test_jax_on_cpu_is_not_measured_unless_forced(monkeypatch):
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    d = decide(never, backend="jax")
    assert d.dtype == "float32" and "JAX" in d.reason
    monkeypatch.setenv("HYBRIDML_CALIBRATE", "1")
    assert decide(FakeRun(monkeypatch), backend="jax").dtype == "bfloat16"


def test_forcing_measures_anywhere_even_a_small_model(monkeypatch):
    monkeypatch.setenv("HYBRIDML_CALIBRATE", "1")
    run = FakeRun(monkeypatch, f32=1.0, bf16=1.7)
    d = decide(run, size=lambda: 10)
    assert d.dtype == "float32" and run.calls
    assert d.measured["bfloat16_s"] == pytest.approx(1.7)


def test_calibrate_0_turns_measuring_off(monkeypatch):
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    monkeypatch.setenv("HYBRIDML_CALIBRATE", "0")
    d = decide(never)
    assert d.dtype == "float32" and "HYBRIDML_CALIBRATE=0" in d.reason


def test_gpu_below_8_is_float32_and_from_8_is_measured(monkeypatch):
    assert decide(never, capability=(7, 5)).dtype == "float32"
    run = FakeRun(monkeypatch)
    assert decide(run, capability=(8, 0)).dtype == "bfloat16" and run.calls


def test_a_failing_measurement_falls_back_to_float32_and_is_not_stored(
    monkeypatch, tmp_path
):
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)

    def broken(dtype):
        if dtype == "bfloat16":
            raise RuntimeError("no bfloat16 kernel for this layer")
        return np.ones((2, 3))

    d = decide(broken)
    assert d.dtype == "float32" and "no bfloat16 kernel" in d.reason
    assert not (tmp_path / "cache" / "precision").exists()
    assert decide(never).dtype == "float32"  # this process does not retry


def test_a_model_instance_is_float32():
    d = decide(None)
    assert d.dtype == "float32" and "model instance" in d.reason


# ------------------------------------------------------------------ the file
def test_decision_is_stored_and_reused_without_measuring(monkeypatch, tmp_path):
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    first = decide(FakeRun(monkeypatch))
    (path,) = (tmp_path / "cache" / "precision").glob("*.json")
    assert json.loads(path.read_text())["dtype"] == "bfloat16"
    calibrate._forget()  # a new process: only the file remembers
    again = decide(never)
    assert again.dtype == "bfloat16" and again.measured == first.measured
    assert "read from" in again.reason


@pytest.mark.parametrize(
    "change",
    [{"threads": 4}, {"backend": "torch"}, {"digest": lambda: "w2"}, "xla"],
    ids=["threads", "backend", "weights", "xla-off"],
)
def test_another_key_measures_again(monkeypatch, change):
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    decide(FakeRun(monkeypatch))
    if change == "xla":  # a switch that changes the forward path
        monkeypatch.setenv("HYBRIDML_TF_XLA", "0")
        change = {}
    run = FakeRun(monkeypatch, f32=1.0, bf16=2.0)
    assert decide(run, **change).dtype == "float32" and run.calls


def _stored(monkeypatch, tmp_path):
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    decide(FakeRun(monkeypatch, f32=1.0, bf16=2.0))  # float32, stored
    calibrate._forget()
    (path,) = (tmp_path / "cache" / "precision").glob("*.json")
    return path, json.loads(path.read_text())


# numbers that would justify bfloat16 (the stored file says float32)
FAST = {
    "float32_s": 1.0,
    "bfloat16_s": 0.5,
    "float32_wall_s": 1.0,
    "bfloat16_wall_s": 0.5,
    "mean_cos": 1.0,
}

HOSTILE = {
    "not json": b"\x00\xff{not json",
    "a list": b"[1, 2]",
    "too big": b"{" + b" " * 10_000 + b"}",
}


@pytest.mark.parametrize("raw", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_malformed_file_is_ignored_and_measured_again(monkeypatch, tmp_path, raw):
    path, _ = _stored(monkeypatch, tmp_path)
    path.write_bytes(raw)
    run = FakeRun(monkeypatch, f32=1.0, bf16=0.5)
    assert decide(run).dtype == "bfloat16" and run.calls
    assert json.loads(path.read_text())["dtype"] == "bfloat16"  # rewritten


@pytest.mark.parametrize(
    "edit",
    [
        {"dtype": "bfloat16"},  # a dtype its own numbers do not justify
        {"dtype": "int8"},
        {"key": "another machine"},
        {"version": 99},
        {"measured": {**FAST, "float32_s": "1"}},
        {"measured": {**FAST, "bfloat16_s": -0.5}},
        {"measured": {**FAST, "bfloat16_wall_s": 0.0}},
        {"measured": {**FAST, "mean_cos": 7.0}},
        {"measured": {**FAST, "float32_s": True}},
        {"measured": {k: v for k, v in FAST.items() if k != "mean_cos"}},
        {"measured": {**FAST, "extra": 1.0}},
        {"measured": None},
    ],
)
def test_a_crafted_file_is_ignored(monkeypatch, tmp_path, edit):
    path, record = _stored(monkeypatch, tmp_path)
    path.write_text(json.dumps({**record, **edit}))
    run = FakeRun(monkeypatch, f32=1.0, bf16=2.0)
    assert decide(run).dtype == "float32" and run.calls


def test_a_stored_reason_is_never_echoed(monkeypatch, tmp_path):
    path, record = _stored(monkeypatch, tmp_path)
    path.write_text(json.dumps({**record, "reason": "\x1b[2Jrm -rf ~"}))
    d = decide(never)
    assert d.dtype == "float32" and "\x1b" not in d.reason and "rm -rf" not in d.reason


def test_nan_written_as_json_is_ignored(monkeypatch, tmp_path):
    path, record = _stored(monkeypatch, tmp_path)
    text = json.dumps(record).replace('"mean_cos": 1.0', '"mean_cos": NaN')
    assert "NaN" in text
    path.write_text(text)
    run = FakeRun(monkeypatch, f32=1.0, bf16=2.0)
    assert decide(run).dtype == "float32" and run.calls


def test_an_unwritable_cache_folder_still_decides(monkeypatch, tmp_path):
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    blocker = tmp_path / "file"
    blocker.write_text("a user's file")
    monkeypatch.setenv("HYBRIDML_CACHE_DIR", str(blocker / "sub"))
    with pytest.raises(ValueError, match="is a file"):
        decide(FakeRun(monkeypatch))


def test_calibration_texts_are_distinct_and_fixed():
    texts = calibrate.calibration_texts(32)
    assert len(set(texts)) == 32 and texts == calibrate.calibration_texts(32)


def test_cpu_facts_describe_names_the_units():
    assert "amx_bf16" in AMX.describe() and AMX.amx and not EPYC.amx
    assert EPYC.bf16 and not OLD.bf16
    assert "no AMX" in calibrate.CpuFacts("x").describe()


# ------------------------------------------------------------------ the transformer
def test_auto_is_the_default_and_float32_without_units(text_preset, monkeypatch):
    monkeypatch.setattr(calibrate, "time_dtypes", never)
    auto = KerasEmbeddingTransformer(text_preset).fit(TEXTS)
    assert auto.get_params()["dtype"] == "auto"
    assert auto.dtype_ == "float32" and "no bfloat16 units" in auto.dtype_reason_
    f32 = KerasEmbeddingTransformer(text_preset, dtype="float32").fit(TEXTS)
    old = KerasEmbeddingTransformer(text_preset, dtype=None).fit(TEXTS)
    assert auto.fingerprint_ == f32.fingerprint_ == old.fingerprint_
    assert old.dtype_ == "float32"
    np.testing.assert_array_equal(auto.transform(TEXTS), f32.transform(TEXTS))


def test_explicit_dtype_wins_and_changes_the_fingerprint(text_preset, monkeypatch):
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    monkeypatch.setattr(calibrate, "time_dtypes", never)
    f32 = KerasEmbeddingTransformer(text_preset, dtype="float32").fit(TEXTS)
    bf16 = KerasEmbeddingTransformer(text_preset, dtype="bfloat16").fit(TEXTS)
    assert (f32.dtype_, bf16.dtype_) == ("float32", "bfloat16")
    assert bf16.dtype_reason_ == "bfloat16: explicit"
    assert f32.fingerprint_ != bf16.fingerprint_


def test_forced_calibration_end_to_end(text_preset, monkeypatch, capsys):
    """A real measurement on the tiny preset; a scripted clock makes bf16 2x."""
    monkeypatch.setenv("HYBRIDML_CALIBRATE", "1")
    ticks = iter([0.0, 1.0, 0.0, 0.5] * calibrate.REPEATS)
    walls = iter([0.0, 1.0, 0.0, 0.5] * calibrate.REPEATS)
    monkeypatch.setattr(calibrate, "_timer", lambda: next(ticks))
    monkeypatch.setattr(calibrate, "_wall", lambda: next(walls))
    est = KerasEmbeddingTransformer(text_preset, verbose=1).fit(TEXTS)
    err = capsys.readouterr().err
    assert f"dtype={est.dtype_}:" in err and "2.00x" in est.dtype_reason_
    cos = calibrate._MEMO[next(iter(calibrate._MEMO))].measured["mean_cos"]
    expected = "bfloat16" if cos >= calibrate.MIN_MEAN_COSINE else "float32"
    assert est.dtype_ == expected
    explicit = KerasEmbeddingTransformer(text_preset, dtype=expected).fit(TEXTS)
    assert est.fingerprint_ == explicit.fingerprint_
    np.testing.assert_array_equal(est.transform(TEXTS), explicit.transform(TEXTS))
    # a clone in a new process reads the stored decision: nothing is timed
    calibrate._forget()
    monkeypatch.setattr(calibrate, "time_dtypes", never)
    assert clone(est).fit(TEXTS).dtype_ == expected


def test_a_tiny_preset_on_an_amx_chip_is_not_measured(text_preset, monkeypatch):
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    monkeypatch.setattr(calibrate, "time_dtypes", never)
    est = KerasEmbeddingTransformer(text_preset).fit(TEXTS)
    why = "JAX" if BACKEND == "jax" else "too few"  # JAX is never measured
    assert est.dtype_ == "float32" and why in est.dtype_reason_


def test_forced_calibration_on_images(cnn_preset, monkeypatch):
    monkeypatch.setenv("HYBRIDML_CALIBRATE", "1")
    est = KerasEmbeddingTransformer(cnn_preset).fit(None)
    (decision,) = calibrate._MEMO.values()
    assert est.dtype_ == decision.dtype and est.dtype_reason_ == decision.reason
    assert set(decision.measured) >= {"float32_s", "bfloat16_s", "mean_cos"}
    assert -1.0 <= decision.measured["mean_cos"] <= 1.0 + 1e-6


def test_thread_count_is_read_from_the_backend():
    assert calibrate._threads(BACKEND) >= 1


def test_auto_with_a_model_instance_is_float32(monkeypatch):
    import keras

    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    monkeypatch.setattr(calibrate, "time_dtypes", never)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    est = KerasEmbeddingTransformer(model).fit(np.ones((3, 4)))
    assert est.dtype_ == "float32" and "model instance" in est.dtype_reason_


def test_clone_and_pickle_keep_auto(text_preset):
    est = KerasEmbeddingTransformer(text_preset)
    assert clone(est).dtype == "auto"
    est.fit(TEXTS)
    back = pickle.loads(pickle.dumps(est))
    assert back.dtype == "auto" and back.dtype_ == est.dtype_
    assert back.fingerprint_ == est.fingerprint_
    np.testing.assert_array_equal(back.transform(TEXTS), est.transform(TEXTS))


def test_the_fine_tuner_never_tunes_a_bfloat16_frozen_copy(text_preset, monkeypatch):
    """Its frozen view loads float32 whatever the embedding "auto" would pick."""
    from hybridml import ContrastiveFineTuner

    real = calibrate.decide

    def refuse(**kw):  # the tuning's own decision (purpose="train") may ask
        if kw.get("purpose") != "train":
            raise AssertionError("the tuner's frozen view asked dtype='auto'")
        return real(**kw)

    monkeypatch.setattr(calibrate, "decide", refuse)
    X = TEXTS * 4
    y = [0, 1, 0] * 4
    tuner = ContrastiveFineTuner(text_preset, epochs=1, batch_size=4, random_state=0)
    tuner.fit(X, y)
    assert tuner.dtype_ == "float32"
    assert tuner.transform(TEXTS).shape == (3, 8)


# ------------------------------------------------------------------ fine-tuning
# what resolve_dtype reads of an Embedder: a digest and a weight count
_Frozen = SimpleNamespace(
    digest=lambda: "w1",
    modality="image",  # Keras' own step mode: no layers read
    model=SimpleNamespace(count_params=lambda: 5 * calibrate.MIN_PARAMS),
)


def _tuning(dtype="auto"):
    from hybridml.embed.training import TrainingSettings

    return TrainingSettings(
        random_state=0, dtype=dtype, pooling="mean", normalize=True,
        sequence_length=None, image_size=None, augment=False, early_stopping=False,
        validation_fraction=0.1, batch_size=4, epochs=1, warmup_ratio=0.1,
        learning_rate=1e-3, weight_decay=0.01, loss="cosine", temperature=0.05,
        patience=2, verbose=0,
    )  # fmt: skip


def resolve_train(monkeypatch, run, dtype="auto"):
    """training.resolve_dtype with ``run`` as its training-step measurement."""
    from hybridml.embed import training

    def step_run(s, frozen, batch, mode):
        return run

    monkeypatch.setattr(training, "_step_run", step_run)
    monkeypatch.setattr(training.keras.backend, "backend", lambda: "tensorflow")
    monkeypatch.setattr(training.precision, "accelerator_capability", lambda: None)
    return training.resolve_dtype(_tuning(dtype), _Frozen, lambda: None, 7.0)


@pytest.mark.parametrize(
    ("f32", "bf16", "noise", "expected"),
    [
        (1.0, 0.5, 0.0, "bfloat16"),  # faster and accurate
        (1.0, 0.95, 0.0, "float32"),  # not faster by the margin
        (1.0, 1.7, 0.0, "float32"),  # slower
        (1.0, 0.5, 0.05, "float32"),  # faster but inaccurate
    ],
    ids=["faster", "barely-faster", "slower", "inaccurate"],
)
def test_tuning_auto_times_training_steps_on_a_bf16_cpu(
    monkeypatch, f32, bf16, noise, expected
):
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    run = FakeRun(monkeypatch, f32=f32, bf16=bf16, noise=noise)
    dtype, reason = resolve_train(monkeypatch, run)
    assert dtype == expected and reason.startswith(f"{expected}: ")
    assert run.calls == ["float32", "bfloat16"] * (1 + calibrate.REPEATS)


def test_tuning_auto_without_bf16_units_times_nothing(monkeypatch):
    spy = FakeRun(monkeypatch)  # OLD: the autouse fixture's CPU
    dtype, reason = resolve_train(monkeypatch, spy)
    assert (dtype, spy.calls) == ("float32", []) and "no bfloat16 units" in reason
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    monkeypatch.setenv("HYBRIDML_CALIBRATE", "0")
    assert resolve_train(monkeypatch, spy)[0] == "float32" and spy.calls == []


def test_tuning_explicit_and_gpu_dtypes_time_nothing(monkeypatch):
    from hybridml.embed import training

    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    assert resolve_train(monkeypatch, never, "float16") == (
        "float16",
        "float16: explicit",
    )
    for capability, expected in [((9, 0), "bfloat16"), ((7, 5), "float16")]:
        monkeypatch.setattr(
            training.precision, "accelerator_capability", lambda c=capability: c
        )
        dtype, reason = training.resolve_dtype(_tuning(), _Frozen, never, 1.0)
        assert dtype == expected and f"CUDA GPU {capability[0]}." in reason


def test_tuning_decision_is_stored_apart_from_the_forward_one(monkeypatch, tmp_path):
    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    forward = decide(FakeRun(monkeypatch, f32=1.0, bf16=0.5))  # same digest "w1"
    run = FakeRun(monkeypatch, f32=1.0, bf16=1.5)  # training steps: slower
    assert resolve_train(monkeypatch, run)[0] == "float32" and run.calls
    files = sorted((tmp_path / "cache" / "precision").glob("*.json"))
    stored = {json.loads(p.read_text())["dtype"]: p for p in files}
    assert set(stored) == {"bfloat16", "float32"}
    assert forward.key in stored["bfloat16"].read_text()
    calibrate._forget()  # a new process: both read back, nothing timed
    dtype, reason = resolve_train(monkeypatch, never)
    assert dtype == "float32" and "read from" in reason
    assert decide(never).dtype == "bfloat16"


def test_tuning_calibration_end_to_end_on_the_tiny_preset(
    text_preset, monkeypatch, capsys
):
    """Real training steps, both dtypes; a refit reads the decision back and
    tunes the same weights (the calibration's random draws are reseeded)."""
    from hybridml import ContrastiveFineTuner
    from hybridml.embed.precision import weighted_layers

    monkeypatch.setenv("HYBRIDML_CALIBRATE", "1")
    X, y = TEXTS * 4, [0, 1, 0] * 4
    tuner = ContrastiveFineTuner(text_preset, epochs=1, batch_size=4, random_state=0)
    tuner.fit(X, y)
    (decision,) = calibrate._MEMO.values()
    assert tuner.dtype_ == decision.dtype and tuner.dtype_reason_ == decision.reason
    assert "measured now" in decision.reason
    assert -1.0 <= decision.measured["mean_cos"] <= 1.0 + 1e-6
    model = tuner._tuned_embedder().model
    assert {w.compute_dtype for w in weighted_layers(model)} == {tuner.dtype_}
    calibrate._forget()
    monkeypatch.setattr(calibrate, "time_dtypes", never)
    again = clone(tuner).set_params(verbose=1).fit(X, y)
    assert again.dtype_ == tuner.dtype_ and "read from" in again.dtype_reason_
    assert (
        f"ContrastiveFineTuner dtype={again.dtype_reason_}" in capsys.readouterr().err
    )
    np.testing.assert_allclose(again.transform(X), tuner.transform(X), atol=1e-6)


def test_tuning_calibration_a_non_finite_bf16_loss_picks_float32(
    text_preset, monkeypatch
):
    from hybridml import ContrastiveFineTuner
    from hybridml.embed import training

    monkeypatch.setenv("HYBRIDML_CALIBRATE", "1")
    made, real = [], training.make_loss

    def make_loss(name, temperature):  # calls: float32, bfloat16, the fit
        loss = real(name, temperature)
        made.append(name)
        if len(made) != 2:
            return loss
        return lambda y_true, y_pred: loss(y_true, y_pred) * float("nan")

    monkeypatch.setattr(training, "make_loss", make_loss)
    X, y = TEXTS * 4, [0, 1, 0] * 4
    tuner = ContrastiveFineTuner(text_preset, epochs=1, batch_size=4, random_state=0)
    tuner.fit(X, y)
    (decision,) = calibrate._MEMO.values()
    assert len(made) == 3 and decision.measured["mean_cos"] == -1.0
    assert tuner.dtype_ == "float32" and "mean cosine" in tuner.dtype_reason_


def test_tuning_decision_is_keyed_by_the_step_mode(monkeypatch):
    """An eager small fit and an XLA large one measure apart."""
    from hybridml.embed import training

    monkeypatch.setattr(calibrate, "cpu_facts", lambda: AMX)
    monkeypatch.setattr(training, "_step_mode", lambda *a: {"run_eagerly": True})
    assert resolve_train(monkeypatch, FakeRun(monkeypatch))[0] == "bfloat16"
    assert resolve_train(monkeypatch, never)[0] == "bfloat16"  # same mode: reused
    monkeypatch.setattr(training, "_step_mode", lambda *a: {"jit_compile": True})
    run = FakeRun(monkeypatch, f32=1.0, bf16=2.0)
    assert resolve_train(monkeypatch, run)[0] == "float32" and run.calls


# -- the fine-tuning task: make_finetune_classifier / _regressor ---------------

META = {"n_classes_": 2}


def _policy(task) -> str:
    return task.backbone.dtype_policy.name


def test_finetune_task_builds_in_the_dtype_asked(text_preset):
    from hybridml.finetune_models import finetune_task

    low = finetune_task(META, backbone=str(text_preset), dtype="bfloat16")
    assert _policy(low) == "mixed_bfloat16"  # bfloat16 compute, float32 weights
    assert {str(v.dtype) for v in low.backbone.weights} == {"float32"}
    high = finetune_task(META, backbone=str(text_preset), dtype="float32")
    assert _policy(high) == "float32"


def test_finetune_auto_is_float32_without_units_and_checks_its_value(
    text_preset, monkeypatch
):
    from hybridml import make_finetune_classifier
    from hybridml.embed import backbones
    from hybridml.finetune_models import finetune_task

    monkeypatch.setattr(calibrate, "time_dtypes", never)
    assert make_finetune_classifier(str(text_preset)).get_params()["model__dtype"] == (
        "auto"
    )

    def no_load(*args, **kwargs):
        raise AssertionError("no second copy of the backbone: nothing to measure")

    monkeypatch.setattr(backbones, "get_embedder", no_load)
    assert _policy(finetune_task(META, backbone=str(text_preset))) == "float32"
    with pytest.raises(ValueError, match=r"model__dtype: got 'bf16'\. Expected one"):
        finetune_task(META, backbone=str(text_preset), dtype="bf16")


def test_forced_finetune_calibration_times_steps_and_draws_no_random_number(
    text_preset, monkeypatch
):
    """A real measurement of training steps on the tiny preset (a scripted clock
    makes bfloat16 2x); the head a seeded build draws is the same as without
    the measurement, and the decision is stored apart from the forward's."""
    import keras

    from hybridml.finetune_dtype import POLICIES
    from hybridml.finetune_models import finetune_task

    monkeypatch.setenv("HYBRIDML_CALIBRATE", "1")
    ticks = iter([0.0, 1.0, 0.0, 0.5] * calibrate.REPEATS)
    walls = iter([0.0, 1.0, 0.0, 0.5] * calibrate.REPEATS)
    monkeypatch.setattr(calibrate, "_timer", lambda: next(ticks))
    monkeypatch.setattr(calibrate, "_wall", lambda: next(walls))
    keras.utils.set_random_seed(3)
    task = finetune_task(META, backbone=str(text_preset))
    (decision,) = calibrate._MEMO.values()
    cos = decision.measured["mean_cos"]
    assert 0.99 < cos <= 1.0 + 1e-6 and "2.00x" in decision.reason
    expected = "bfloat16" if cos >= calibrate.MIN_MEAN_COSINE else "float32"
    assert decision.dtype == expected and _policy(task) == POLICIES[expected]
    keras.utils.set_random_seed(3)
    monkeypatch.setattr(calibrate, "time_dtypes", never)
    again = finetune_task(META, backbone=str(text_preset))  # decided: not timed
    plain = finetune_task(META, backbone=str(text_preset), dtype=expected)
    assert _policy(again) == _policy(plain) == POLICIES[expected]
    for a, b in zip(task.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the same draws: the head included
    # the forward's rule for the same backbone is another decision
    est = KerasEmbeddingTransformer(text_preset)
    monkeypatch.setattr(calibrate, "time_dtypes", lambda run: decision.measured)
    est.fit(TEXTS)
    assert len(calibrate._MEMO) == 2


def test_finetune_classifier_trains_in_mixed_bfloat16(text_preset):
    from hybridml import make_finetune_classifier

    texts = ["a good film", "a bad film", "great fun", "awful and boring"] * 2
    y = ["pos", "neg", "pos", "neg"] * 2
    clf = make_finetune_classifier(
        str(text_preset),
        dtype="bfloat16",
        sequence_length=32,
        epochs=1,
        batch_size=4,
        random_state=0,
    ).fit(texts, y)
    assert _policy(clf.model_) == "mixed_bfloat16"
    proba = clf.predict_proba(texts)
    assert proba.dtype == np.float64 and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_finetune_measurement_compares_the_same_untrained_weights(text_preset):
    """Both copies start from the weights the first was built with: built in
    one dtype twice, their vectors are equal even though the first has
    trained a step by the time the second is built."""
    from hybridml.finetune_dtype import _step_run
    from hybridml.finetune_models import _task

    run = _step_run(
        lambda policy: _task(str(text_preset), 2, 0.1, None, "float32"), False
    )
    first, second = run("float32"), run("bfloat16")  # "bfloat16" built in float32
    np.testing.assert_allclose(first, second, rtol=1e-5, atol=1e-6)
    assert run("float32") is None  # later calls train a step and return nothing

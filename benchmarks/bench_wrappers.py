"""Overhead of KerasClassifier over calling Keras directly, in the same run.

The baseline builds the same network with the same function, compiles it with
the same loss and optimizer, and calls ``model.fit`` / ``model.predict`` on the
same data and batch size. The wrapper adds input validation, label encoding,
parameter routing and (with ``random_state``) seeding. Runs alternate between
the two, and the best time of each is kept (``timeit``'s rule: load from other
processes only ever adds time).

    KERAS_BACKEND=jax python benchmarks/bench_wrappers.py [--quick]
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np

import hybridml
from hybridml import KerasClassifier
from hybridml._imports import import_keras

LOSS = "sparse_categorical_crossentropy"


def build(meta, hidden=256):
    keras = import_keras()
    inputs = keras.Input(shape=(meta["n_features_in_"],))
    x = keras.layers.Dense(hidden, activation="relu")(inputs)
    x = keras.layers.Dense(hidden, activation="relu")(x)
    outputs = keras.layers.Dense(meta["n_classes_"], activation="softmax")(x)
    return keras.Model(inputs, outputs)


def timed(func):
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="training rows")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small, for CI")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.epochs, args.repeats = 2_000, 1, 1
    hybridml.quiet()
    keras = import_keras()

    rng = np.random.RandomState(0)
    X = rng.normal(size=(args.n, 32)).astype("float32")
    y = (X[:, :4] @ rng.normal(size=4) > 0).astype(int) + 2 * (X[:, 4] > 0)
    meta = {"n_features_in_": X.shape[1], "n_classes_": 4}
    fit_kwargs = dict(epochs=args.epochs, batch_size=args.batch_size, verbose=0)

    def direct_fit():
        model = build(meta)
        model.compile(optimizer="adam", loss=LOSS)
        model.fit(X, y, **fit_kwargs)
        return model

    def wrapper_fit(random_state=None):
        clf = KerasClassifier(
            build,
            loss=LOSS,
            optimizer="adam",
            epochs=args.epochs,
            batch_size=args.batch_size,
            random_state=random_state,
        )
        return clf.fit(X, y)

    def seeded_fit():
        return wrapper_fit(random_state=0)

    times: dict[str, list[float]] = {}

    def record(name, seconds):
        times.setdefault(name, []).append(seconds)

    direct_fit(), wrapper_fit()  # warm-up: imports, first traces
    for _ in range(args.repeats):
        t, model = timed(direct_fit)
        record("fit: model.fit", t)
        t, clf = timed(wrapper_fit)
        record("fit: KerasClassifier.fit", t)
        record("fit: KerasClassifier.fit, random_state=0", timed(seeded_fit)[0])
        for label, rows in (("one batch", X[: args.batch_size]), ("all rows", X)):
            calls = {
                f"predict {label}: model.predict": functools.partial(
                    model.predict, rows, batch_size=args.batch_size, verbose=0
                ),
                f"predict {label}: KerasClassifier.predict": functools.partial(
                    clf.predict, rows
                ),
            }
            for name, call in calls.items():  # the first call on a fresh model
                record(f"first {name}", timed(call)[0])  # traces model.predict
            for _ in range(10):
                for name, call in calls.items():
                    record(name, timed(call)[0])

    best = {name: min(values) for name, values in times.items()}
    print(
        f"backend={keras.backend.backend()} rows={args.n} epochs={args.epochs} "
        f"batch_size={args.batch_size} repeats={args.repeats}"
    )
    for name, seconds in best.items():
        print(f"  {name:<54} {seconds:9.4f} s")
    pairs = [
        ("fit", "fit: KerasClassifier.fit", "fit: model.fit"),
        (
            "fit, random_state=0",
            "fit: KerasClassifier.fit, random_state=0",
            "fit: model.fit",
        ),
        (
            "predict, all rows",
            "predict all rows: KerasClassifier.predict",
            "predict all rows: model.predict",
        ),
        (
            "predict, one batch",
            "predict one batch: KerasClassifier.predict",
            "predict one batch: model.predict",
        ),
        (
            "first predict, one batch",
            "first predict one batch: KerasClassifier.predict",
            "first predict one batch: model.predict",
        ),
    ]
    for label, ours, theirs in pairs:
        ratio = best[ours] / best[theirs]
        print(f"  ratio wrapper / keras, {label:<26} {ratio:.3f}")
    return best


if __name__ == "__main__":
    main()

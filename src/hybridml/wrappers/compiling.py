"""Building and compiling the model of one fit (a mixin of the wrappers' base).

The steps: instantiate the optimizer / metrics / compile arguments; build the
model (call the build callable, copy a ``keras.Model`` instance, or make the
default MLP); set a text preprocessor's ``sequence_length``; preprocess raw
input once; read the output width; compile (or keep the build's compilation).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from sklearn.base import BaseEstimator

from . import raw_inputs, routing
from .building import (
    clone_with_weights,
    default_mlp,
    output_width,
    parameter_names,
)

_COMPILE_ROUTES = ("optimizer", "loss", "metrics", "compile")
_WARNED: set[tuple] = set()  # default losses already announced in this process


class CompileMixin:
    """Model building and compilation for ``KerasBase``.

    It needs from the class it is mixed into only the estimator's parameters
    (``model``, ``optimizer``, ``loss``, ``metrics``, ``compile_kwargs``, ...),
    ``_kwargs`` (the routed keyword arguments) and the four hooks declared
    below, which the classifier and the regressor define: that is its whole
    interface, so it reads without the other files open.
    """

    # -- hooks the concrete wrapper provides ----------------------------------
    def _default_loss(self, width: int) -> str:
        """The loss used when ``loss`` is None, for an output ``width`` wide."""
        raise NotImplementedError

    def _set_encoding(self, loss: Any, width: int) -> None:
        """Choose the target encoding the compiled loss expects."""
        raise NotImplementedError

    def _meta(self) -> dict[str, Any]:
        """What a build callable may read (``n_features_in_``, classes, ...)."""
        raise NotImplementedError

    def _model_inputs(self, model: Any, X: Any) -> Any:
        """``X`` as the model takes it (raw inputs preprocessed once)."""
        raise NotImplementedError

    # -- building and compiling -----------------------------------------------

    def _build_and_compile(self, keras, X):
        """Build (or copy the instance) and compile; return (model, inputs)."""
        compile_kwargs = self._compile_kwargs(keras)
        model, compiled, loss, build = self._make_model(keras, X, compile_kwargs)
        raw_inputs.set_sequence_length(model, getattr(self, "sequence_length", None))
        raw_inputs.check_sequence_length(model)
        X = self._model_inputs(model, X)
        width = output_width(keras, model, X)
        if compiled:
            loss = self._use_compiled(model, build)
        else:
            loss = self._compile_model(keras, model, compile_kwargs, loss, width)
        self._set_encoding(loss, width)
        return model, X

    def _compile_kwargs(self, keras) -> dict[str, Any]:
        """Fresh optimizer and metrics, plus compile__* arguments."""
        optimizer = routing.instantiate(
            self.optimizer,
            routing.routed(self._kwargs, "optimizer"),
            module=keras.optimizers,
            route="optimizer",
            fresh=True,
        )
        compile_kwargs = {"optimizer": optimizer, "run_eagerly": self.run_eagerly}
        metrics = self.metrics
        if metrics is None or isinstance(metrics, (list, tuple)):
            metrics = routing.instantiate_each(
                metrics or [],
                routing.routed(self._kwargs, "metrics"),
                module=keras.metrics,
                route="metrics",
                fresh=True,
            )
        if self.metrics is not None:
            compile_kwargs["metrics"] = metrics
        extra = routing.routed(self._kwargs, "compile")
        accepted = routing.signature_names(keras.Model.compile) - {"self"}
        routing.check_names(extra, accepted, "keras.Model.compile", prefix="compile__")
        compile_kwargs.update(extra)
        return compile_kwargs

    def _make_model(self, keras, X, compile_kwargs):
        """Return (model, compiled?, loss spec, build callable or None)."""
        if isinstance(self.model, keras.Model):
            if raw_inputs.preprocessor_of(self.model) is not None:
                model = raw_inputs.copy_task(self.model)
            else:
                model = clone_with_weights(keras, self.model, X)
            loss = self.loss
            if loss is None and self.model.compiled:
                loss = self.model.loss
            return model, False, loss, None
        build = self.model if self.model is not None else default_mlp
        hint = self.loss if self.loss is not None else self._default_loss(None)
        model = self._call_build(
            build, {**compile_kwargs, "loss": self._loss(keras, hint)}
        )
        if not isinstance(model, keras.Model):
            raise TypeError(
                f"model: the build callable returned {type(model).__name__}. "
                "Expected a keras.Model. Return the model from the function."
            )
        return model, model.compiled, self.loss, build

    def _use_compiled(self, model, build):
        """Keep the build's own compilation; return its loss."""
        if model.loss is None:
            raise ValueError(
                "model: the build callable returned a model compiled without a "
                "loss. Expected a loss. Pass loss= to the estimator and return "
                "the model uncompiled, or compile it with a loss."
            )
        if "compile_kwargs" not in parameter_names(build):
            self._warn_if_compile_params_ignored(self.get_params(deep=False))
        if self.run_eagerly:  # a debugging switch: honoured on any model
            model.run_eagerly = True
        return model.loss

    def _compile_model(self, keras, model, compile_kwargs, loss, width):
        """Compile with the estimator's loss, or the documented default."""
        if loss is not None:
            loss = self._loss(keras, loss)
        else:
            name = self._default_loss(width)
            logits = not self._y_numeric and raw_inputs.outputs_logits(model)
            loss = self._loss(keras, name, from_logits=logits)
            key = (type(self).__name__, name, logits)
            if self.model is not None and key not in _WARNED:  # once per process
                _WARNED.add(key)
                how = " with from_logits=True (the model outputs logits)"
                warnings.warn(
                    f"loss: none given for an uncompiled model, so {name!r}"
                    f"{how if logits else ''} is used. Pass loss= to choose it "
                    "explicitly.",
                    UserWarning,
                    stacklevel=6,  # the caller of fit()
                )
        model.compile(**{**compile_kwargs, "loss": loss})
        return loss

    def _loss(self, keras, spec, *, from_logits=False):
        routed = routing.routed(self._kwargs, "loss")
        if from_logits:
            routed = {"from_logits": True, **routed}
        return routing.instantiate(
            spec, routed, module=keras.losses, route="loss", fresh=False
        )

    def _call_build(self, build: Callable, compile_kwargs: dict) -> Any:
        """Call the build callable with its routed and bare keyword arguments."""
        params = self.get_params(deep=False)
        bare = {k: v for k, v in self._kwargs.items() if not routing.route_of(k)}
        routed = routing.routed(self._kwargs, "model")
        accepted = routing.signature_names(build)
        name = getattr(build, "__name__", type(build).__name__)
        where = f"the model callable {name}()"
        if accepted is not None:
            own = {"meta", "compile_kwargs", "params"}
            estimator_params = BaseEstimator.get_params(self, deep=False)
            routing.check_names(bare, accepted - own, where, extra=estimator_params)
            routing.check_names(routed, accepted - own, where, prefix="model__")
        declared = parameter_names(build)
        kwargs = {**bare, **routed}
        if "meta" in declared:
            kwargs["meta"] = self._meta()
        if "compile_kwargs" in declared:
            kwargs["compile_kwargs"] = compile_kwargs
        if "params" in declared:
            kwargs["params"] = params
        return build(**kwargs)

    def _warn_if_compile_params_ignored(self, params):
        given = [k for k in ("loss", "metrics") if params[k] is not None]
        if not (isinstance(self.optimizer, str) and self.optimizer == "rmsprop"):
            given.append("optimizer")
        given += [k for k in params if routing.route_of(k) in _COMPILE_ROUTES]
        if given:
            warnings.warn(
                f"The build callable returned a compiled model, so {sorted(given)} "
                "are not used. Compile inside the callable with its "
                "compile_kwargs argument, or return the model uncompiled.",
                UserWarning,
                stacklevel=6,  # the caller of fit()
            )

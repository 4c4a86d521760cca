"""Gradio components rebuilt from the recorded surface (:mod:`.spec`).

view_api names a component after its class (``type(c).__name__.lower()``, capitalised), so WanGP's
two custom components are reproduced by subclasses with the same class names. Only the API matters
here: the browser UI of the mock is not meant to be used.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from .spec import ComponentSpec


class WangpImageEditor(gr.ImageEditor):
    """Stands in for WanGP's custom image editor (view_api: ``Wangpimageeditor``)."""


class HierarchySelector(gr.Dropdown):
    """Stands in for WanGP's LoRA picker (view_api: ``Hierarchyselector``, a list of strings).

    Any string is accepted, like the real one, whose choices come from the LoRA folder.
    """

    def __init__(self, value: Any = None, **kwargs: Any) -> None:
        kwargs.update(multiselect=True, allow_custom_value=True)
        super().__init__(value=value, **kwargs)

    def api_info(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "string"}}


class RangeSlider(gr.Slider):
    """Stands in for the ``gradio_rangeslider`` custom component (a pair of numbers)."""

    def __init__(self, value: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.value = value

    def preprocess(self, payload: Any) -> Any:
        return payload

    def postprocess(self, value: Any) -> Any:
        return value

    def api_info(self) -> dict[str, Any]:
        number = {"anyOf": [{"type": "number"}, {"type": "null"}]}
        return {"maxItems": 2, "minItems": 2, "prefixItems": [number, number],
                "title": "RangeSliderData", "type": "array", "additional_description": None}


_CLASSES: dict[str, type[gr.components.Component]] = {
    "textbox": gr.Textbox, "dropdown": gr.Dropdown, "slider": gr.Slider, "number": gr.Number,
    "html": gr.HTML, "markdown": gr.Markdown, "checkbox": gr.Checkbox, "radio": gr.Radio,
    "checkboxgroup": gr.CheckboxGroup, "gallery": gr.Gallery, "image": gr.Image, "video": gr.Video,
    "audio": gr.Audio, "file": gr.File, "fileexplorer": gr.FileExplorer,
    "uploadbutton": gr.UploadButton, "downloadbutton": gr.DownloadButton,
    "wangpimageeditor": WangpImageEditor, "hierarchyselector": HierarchySelector,
    "rangeslider": RangeSlider,
}


def component_kwargs(spec: ComponentSpec) -> dict[str, Any]:
    """Constructor arguments reproducing the recorded component (value, choices, range, label)."""
    kind = spec.type
    kwargs: dict[str, Any] = {"visible": spec.config.get("visible", True)}
    if spec.config.get("elem_id"):  # WanGP's own ids, e.g. the model selector's family_list
        kwargs["elem_id"] = spec.config["elem_id"]
    if spec.label is not None and kind not in ("uploadbutton", "downloadbutton", "html", "markdown"):
        kwargs["label"] = spec.label
    elif kind in ("uploadbutton", "downloadbutton") and spec.label is not None:
        kwargs["label"] = spec.label
    if spec.has_default and spec.default is not None:
        kwargs["value"] = spec.default
    schema = spec.schema
    if kind in ("dropdown", "radio", "checkboxgroup"):
        kwargs["choices"] = spec.choices or []
        if kind == "dropdown":
            kwargs["multiselect"] = schema.get("type") == "array"
            kwargs["allow_custom_value"] = bool(spec.config.get("allow_custom_value", False))
        if "value" not in kwargs:
            kwargs["value"] = [] if kwargs.get("multiselect") or kind == "checkboxgroup" else None
    elif kind in ("slider", "rangeslider"):
        low, high = spec.numeric_range or (0.0, 100.0)
        kwargs.update(minimum=low, maximum=high)
        if "step" in spec.config:
            kwargs["step"] = spec.config["step"]
        kwargs.setdefault("value", low if kind == "slider" else None)
    elif kind in ("audio", "file", "uploadbutton"):
        kwargs["type"] = "filepath"
        if kind in ("file", "uploadbutton") and spec.api.get("python_type", "").startswith("list"):
            kwargs["file_count"] = "multiple"
    elif kind == "image":
        kwargs["type"] = "filepath"
    elif kind == "wangpimageeditor":
        kwargs["type"] = "filepath"
    return kwargs


def build_component(spec: ComponentSpec, **overrides: Any) -> gr.components.Component:
    """A gradio component equivalent (for view_api) to the recorded ``spec``.

    ``overrides`` replace constructor arguments, e.g. the model-dependent choices and defaults.
    """
    kwargs = component_kwargs(spec)
    kwargs.update(overrides)
    cls = _CLASSES[spec.type]
    if cls is gr.Dropdown and spec.schema.get("type") == "array" and "value" in kwargs:
        kwargs["value"] = list(kwargs["value"] or [])
    return cls(**kwargs)

"""The options of a dataset: how prepare turns a folder of images into arrays (a params.yaml
`datasets` entry over the `prepare` defaults), and the derived datasets it can make while
decoding (smallvision.data.derive applies them)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from smallvision.options.schema import Strict

SKLEARN_PHOTOS = "sklearn"  # the two photographs that ship with scikit-learn (china.jpg, flower.jpg)


class CompositeConfig(Strict):
    """Paste each image's object (transparent or plain background removed) at a random scale,
    position and flip onto a random crop of a background photo. `backgrounds`: `sklearn`
    (scikit-learn's two photos, offline) or a folder of photos; `scale`: the object's longer
    side as a fraction of image_size; `copies`: composites per source image (all copies of
    one image land in the same split)."""

    backgrounds: str = SKLEARN_PHOTOS
    scale: tuple[float, float] = (0.5, 0.9)
    flip: bool = True
    copies: int = Field(1, ge=1, le=100)
    seed: int = 0

    @model_validator(mode="after")
    def _scale_is_a_range(self):
        low, high = self.scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"scale must be [low, high] with 0 < low <= high <= 1 (got {list(self.scale)})")
        return self


class SilhouetteCropConfig(Strict):
    """Crop to the object's bounding box before resizing: `find: background` takes the pixels
    that differ from the border colour by more than `threshold`, `find: outline` the pixels
    darker than `threshold` (sprites' dark outlines); the box grows by `pad` of its size."""

    find: Literal["background", "outline"] = "background"
    threshold: int = Field(40, ge=1, le=255)
    pad: float = Field(0.05, ge=0, le=0.5)


class DatasetConfig(Strict):
    """How prepare turns a folder into arrays. `root` is an image folder: `<class>/<image>`,
    or `train/` and `test/` subfolders (their split is kept), or a folder holding a fetched
    source's arrays.npz. `resize`: stretch to a square, crop the centre square, or pad to a
    square with the border colour. Fractions are of each class; `test_fraction` is unused
    when the source has its own test split.

    Derived datasets: `classes` keeps only these class folders; `target` is the folder's
    class, or (class folders named after Pokémon species, facts from the PokeAPI CSVs in
    `pokeapi`) its `types` (multi-label, over the types its images have) or `primary_type`;
    `keep_labels` keeps only the images whose target is one of these (e.g. the nine types a
    report classified); `split_by: folder` puts every class folder (a species) wholly in one
    split, stratified by the target, so that the test split holds only unseen folders; `min_per_class` drops
    smaller classes and `max_per_class` keeps a seeded random pick (both count species for
    `types`); `composite` pastes each object onto background photos; `silhouette_crop`
    crops to the object before resizing (smallvision/data/selection.py, derive.py)."""

    root: str | None = None
    image_size: int = Field(32, ge=4, le=1024)
    color: Literal["rgb", "gray"] = "rgb"
    resize: Literal["stretch", "crop", "pad"] = "stretch"
    val_fraction: float = Field(0.15, ge=0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0, lt=0.5)
    split_seed: int = 0
    on_bad_image: Literal["error", "skip"] = "error"
    workers: int = Field(0, ge=0)
    seed_dataset: str | None = None  # the seed experiment's dataset this one stands in for (report)
    classes: list[str] | None = Field(None, min_length=1)
    target: Literal["class", "types", "primary_type"] = "class"
    keep_labels: list[str] | None = Field(None, min_length=2)  # only images whose target is one of these
    split_by: Literal["image", "folder"] = "image"
    pokeapi: str | None = None
    min_per_class: int = Field(1, ge=1)
    max_per_class: int | None = Field(None, ge=1)
    composite: CompositeConfig | None = None
    silhouette_crop: SilhouetteCropConfig | None = None

    @model_validator(mode="after")
    def _type_targets_need_pokeapi(self):
        if self.target != "class" and not self.pokeapi:
            raise ValueError(f"target: {self.target} needs pokeapi: the folder of PokeAPI CSVs "
                             "(a fetched pokeapi source, e.g. data/raw/pokeapi)")
        if self.split_by == "folder" and self.target != "primary_type":
            raise ValueError("split_by: folder splits whole class folders by their target: it needs target: "
                             "primary_type (with target: class a folder is its class, and a class wholly in the "
                             "test split could not be learnt)")
        if self.keep_labels and self.target == "types":
            raise ValueError("keep_labels applies to single-label targets (class, primary_type)")
        return self

"""Which images a dataset keeps and what it learns from them, decided before any decoding:
a subset of class folders (`classes`), the target (`class`, the Pokémon `types` as a
multi-label target over the types present, or the `primary_type`), the labels kept
(`keep_labels`), then per-class limits (`min_per_class`,
`max_per_class`), then the composite's copies (each source image pasted `copies` times).

Splits are stratified by `strata`: the label for single-label targets, the class folder
(species) for `types`, so every species appears in every split with a fixed seed. The
per-class limits count the same strata."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from smallvision.core.errors import UserError
from smallvision.core.registry import did_you_mean


@dataclass
class Selection:
    rows: np.ndarray  # indices into the source's images, ascending
    labels: np.ndarray  # per kept image: int64 (N,), or uint8 multi-hot (N, len(classes)) for multilabel
    classes: list[str]  # label names
    strata: np.ndarray  # per kept image: int64 group the split is stratified by
    strata_names: list[str]
    task: str  # "single" | "multilabel"
    copy: np.ndarray | None = None  # which copy of its source image each row is; None: one copy each


def select_examples(folder_labels: np.ndarray, folder_names: list[str], cfg, where: str) -> Selection:
    """Apply a DatasetConfig's classes, target and per-class limits to a source's labels."""
    folder_labels = np.asarray(folder_labels, dtype=np.int64)
    rows = _rows_of_named_classes(folder_labels, folder_names, cfg.classes, where)
    selection = _with_target(rows, folder_labels[rows], folder_names, cfg, where)
    if cfg.keep_labels:
        selection = _keep_labels(selection, cfg.keep_labels, where)
    selection = _limit_per_stratum(selection, cfg, where)
    return _with_copies(selection, cfg.composite.copies if cfg.composite else 1)


def _rows_of_named_classes(labels: np.ndarray, names: list[str], wanted: list[str] | None, where: str) -> np.ndarray:
    if wanted is None:
        return np.arange(len(labels))
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise UserError(f"{where}.classes: no class folder '{unknown[0]}'{did_you_mean(unknown[0], names)} "
                        f"(the source has {len(names)} classes, e.g. {', '.join(names[:5])})")
    return np.flatnonzero(np.isin(labels, [names.index(name) for name in wanted]))


def _with_target(rows: np.ndarray, labels: np.ndarray, names: list[str], cfg, where: str) -> Selection:
    if cfg.target == "class":
        return _compact(Selection(rows, labels, names, labels, names, "single"))
    from smallvision.sources.pokeapi import load_facts, match_species, type_names

    present = np.unique(labels)  # only the folders kept by `classes` need to join a species
    facts = match_species([names[i] for i in present], load_facts(cfg.pokeapi), where)
    types = {int(folder): entry["types"] for folder, entry in zip(present, facts)}
    all_types = type_names(cfg.pokeapi)
    if cfg.target == "primary_type":
        primary = np.array([all_types.index(types[folder][0]) for folder in labels], dtype=np.int64)
        return _compact(Selection(rows, primary, all_types, primary, all_types, "single"))
    multi_hot = np.zeros((len(labels), len(all_types)), dtype=np.uint8)
    for row, folder in enumerate(labels):
        multi_hot[row, [all_types.index(kind) for kind in types[folder]]] = 1
    return _compact(Selection(rows, multi_hot, all_types, labels, names, "multilabel"))


def _keep_labels(selection: Selection, wanted: list[str], where: str) -> Selection:
    """Only the images whose (single) target is one of `wanted`."""
    unknown = [name for name in wanted if name not in selection.classes]
    if unknown:
        raise UserError(f"{where}.keep_labels: no image has the label '{unknown[0]}'"
                        f"{did_you_mean(unknown[0], selection.classes)}; present: {', '.join(selection.classes)}")
    keep = np.flatnonzero(np.isin(selection.labels, [selection.classes.index(name) for name in wanted]))
    return _compact(replace(selection, rows=selection.rows[keep], labels=selection.labels[keep],
                            strata=selection.strata[keep]))


def _limit_per_stratum(selection: Selection, cfg, where: str) -> Selection:
    """Drop strata with fewer than min_per_class images; keep at most max_per_class of each
    (a random pick fixed by split_seed)."""
    rng = np.random.default_rng(cfg.split_seed)
    keep = []
    for stratum in range(len(selection.strata_names)):
        members = np.flatnonzero(selection.strata == stratum)
        if len(members) < cfg.min_per_class:
            continue
        if cfg.max_per_class is not None and len(members) > cfg.max_per_class:
            members = np.sort(rng.choice(members, cfg.max_per_class, replace=False))
        keep.append(members)
    if not keep:
        raise UserError(f"{where}: no class has min_per_class={cfg.min_per_class} images; lower min_per_class")
    keep = np.sort(np.concatenate(keep))
    return _compact(replace(selection, rows=selection.rows[keep], labels=selection.labels[keep],
                            strata=selection.strata[keep]))


def _with_copies(selection: Selection, copies: int) -> Selection:
    if copies == 1:
        return selection
    repeat = partial(np.repeat, repeats=copies, axis=0)
    return replace(selection, rows=repeat(selection.rows), labels=repeat(selection.labels),
                   strata=repeat(selection.strata), copy=np.tile(np.arange(copies), len(selection.rows)))


def _compact(selection: Selection) -> Selection:
    """Renumber strata (and single labels) so that only those still present remain."""
    present = np.unique(selection.strata)
    strata = np.searchsorted(present, selection.strata)
    strata_names = [selection.strata_names[i] for i in present]
    if selection.task == "multilabel":
        # The label set is the types some kept image has: over types no image has, answering "no" is
        # trivially right and would inflate every per-label figure (18 PokeAPI types, 10 on 10 species).
        used = np.flatnonzero(selection.labels.any(0))
        return replace(selection, labels=selection.labels[:, used], classes=[selection.classes[i] for i in used],
                       strata=strata, strata_names=strata_names)
    return replace(selection, labels=strata, classes=strata_names, strata=strata, strata_names=strata_names)

"""The page model every published product is drawn from: a track's arms with each seed's figures,
the splits they were tested on, the run's provenance, and what the seed report published beside
each. docs/results/<track>.json holds one Page; archived pages (docs/results/archive/) hold the
studies that came before the tracks, in the same model."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from smallvision.publish.compare import CHOOSE_BY, chosen
from smallvision.report.stats import interval

ROLES = {"baseline": "trivial baseline", "seed": "the report's experiment", "ours": "ours"}


@dataclass
class Reference:
    """A published figure set beside an arm: the report's file, the section it is printed in."""

    report: str
    section: str
    experiment: str
    metric: str
    value: float
    measured_on: str = "not stated"
    printed: str = ""


@dataclass
class Arm:
    """One arm of a track: a recipe with a few keys set, run with several seeds on one dataset."""

    name: str
    dataset: str
    recipe: str
    kind: str  # "supervised", or "ssl" (pretrained without labels, then evaluated)
    role: str  # a key of ROLES
    question: str = ""
    parent: str | None = None
    differs: str = ""
    set: dict = field(default_factory=dict)
    per_seed: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> seed (text) -> figure
    references: list[Reference] = field(default_factory=list)
    about: dict = field(default_factory=dict)  # e.g. an SSL arm's method, backbone and initial weights
    # metric -> {mean, low, high, n}: an archived arm whose page kept summaries, not each seed's figure
    summaries: dict[str, dict[str, float]] = field(default_factory=dict)
    train_per_class: int | None = None  # trained on so many images of each class (a data-efficiency point)
    curve: str | None = None  # the arm whose data-efficiency curve this point is on (its name without _k<k>)

    @property
    def seeds(self) -> list[int]:
        return sorted({int(seed) for figures in self.per_seed.values() for seed in figures})

    def figures(self, metric: str) -> dict[str, float]:
        return self.per_seed.get(metric, {})

    def mean(self, metric: str) -> float:
        values = list(self.figures(metric).values())
        if not values and metric in self.summaries:
            return self.summaries[metric]["mean"]
        return sum(values) / len(values) if values else math.nan

    def summary(self, metric: str, confidence: float) -> tuple[float, float, float, int]:
        """(mean, low, high, n) over the seeds (an archived page's summary where it kept no seed's figure)."""
        if not self.figures(metric) and metric in self.summaries:
            kept = self.summaries[metric]
            return kept["mean"], kept["low"], kept["high"], int(kept["n"])
        mean, _, n, low, high = interval(list(self.figures(metric).values()), confidence)
        return mean, low, high, n


@dataclass
class Split:
    """A dataset as prepared: how many images each split holds, and a fingerprint of its test
    split (its files and labels), which tells the datasets that were tested on the same images."""

    dataset: str
    seed_dataset: str | None
    classes: int
    train_images: int
    val_images: int
    test_images: int
    test_split: str
    multilabel: bool = False


@dataclass
class Page:
    track: str
    about: str
    status: str  # "current" (a track's page) or "archived" (a study from before the tracks)
    command: str
    metadata: dict
    confidence: float
    splits: dict[str, Split]
    arms: list[Arm]
    report: str | None = None  # the seed report's file
    data: dict = field(default_factory=dict)  # the report's data and ours: {seed, ours, same, differences}
    headline: list[dict] = field(default_factory=list)  # [{dataset, metric}] rows for the README
    superseded_by: str | None = None  # an archived page: where its question is answered now
    notes: list[str] = field(default_factory=list)

    def arm(self, name: str) -> Arm:
        return next(arm for arm in self.arms if arm.name == name)

    def split_of(self, arm: Arm) -> str:
        return self.splits[arm.dataset].test_split

    def on_split(self, dataset: str, kind: str | None = None) -> list[Arm]:
        """The arms tested on the same images as `dataset` (of one kind, when given)."""
        split = self.splits[dataset].test_split
        return [arm for arm in self.arms if self.split_of(arm) == split and (kind is None or arm.kind == kind)]

    def candidates(self, dataset: str, kind: str = "supervised") -> list[Arm]:
        """The arms a split's result may be chosen from: every arm tested on `dataset`'s images but
        the trivial baseline and the points of a data-efficiency curve (trained on a subset)."""
        return [arm for arm in self.on_split(dataset, kind) if arm.role != "baseline" and arm.train_per_class is None]

    def chosen(self, dataset: str, kind: str = "supervised") -> Arm | None:
        """The arm chosen on validation among the non-baseline arms of `kind` tested on `dataset`'s
        images: the highest mean validation accuracy (an SSL arm's: its fine-tune's)."""
        metric = CHOOSE_BY if kind == "supervised" else "finetune_val_accuracy"
        candidates = {arm.name: arm.mean(metric) for arm in self.candidates(dataset, kind)}
        name = chosen(candidates)
        return self.arm(name) if name else None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, ensure_ascii=False, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> Page:
        arms = [Arm(**{**arm, "references": [Reference(**ref) for ref in arm.get("references", [])]})
                for arm in data["arms"]]
        splits = {name: Split(**split) for name, split in data["splits"].items()}
        return cls(**{**data, "arms": arms, "splits": splits})


def read_page(path: Path) -> Page:
    return Page.from_dict(json.loads(Path(path).read_text()))


def write_page(page: Page, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{page.track}.json"
    path.write_text(page.to_json())
    return path

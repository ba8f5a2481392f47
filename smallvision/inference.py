"""Load a trained recipe from the pipeline's outputs and predict class probabilities."""

from __future__ import annotations

import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from smallvision.core.errors import DamagedFile, UserError
from smallvision.core.io import verify
from smallvision.core.paths import BEST, rebuild_advice
from smallvision.core.prepared import PreparedData
from smallvision.models.build import build_for_data
from smallvision.models.classifier import Classifier, parameter_count
from smallvision.models.device import resolve_device, to_float_images
from smallvision.models.weights import load_weights
from smallvision.options.recipes import PREDICTORS, KnnRecipe, TorchRecipe


@PREDICTORS.implement("torch")
class TorchPredictor:
    WEIGHTS = BEST  # the file in the model folder that the recipe's fit writes

    def __init__(self, recipe: TorchRecipe, data: PreparedData, weights: Path):
        self.device = resolve_device(recipe.device)
        self.model = build_for_data(recipe, data, statistics=False)
        self.model.load_state_dict(load_weights(weights))
        self.model.to(self.device).eval()
        self.multilabel = data.multilabel
        self.parameters = parameter_count(self.model)["parameters"]
        self.tta = TTA[getattr(recipe, "tta", "none")]
        self.train_size = self.model.input_size or data.image_size  # the side the model's stem trained at
        self.test_size: int | None = None  # the side it resizes test images to; None: the training side

    @torch.no_grad()
    def scores(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (softmax; sigmoid per class for multilabel)."""
        out = []
        with resized_to(self.model, self.test_size):
            for i in range(0, len(images), batch_size):
                x = to_float_images(torch.as_tensor(images[i:i + batch_size], device=self.device))
                logits = self.tta(self.model, x)
                out.append((torch.sigmoid(logits) if self.multilabel else logits.softmax(1)).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    @torch.no_grad()
    def embeddings(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        out = [self.model.embed(to_float_images(torch.as_tensor(images[i:i + batch_size], device=self.device)))
               .float().cpu().numpy() for i in range(0, len(images), batch_size)]
        return np.concatenate(out)


@contextmanager
def resized_to(model, side: int | None):
    """The model's stem resizing its input to `side` instead of its own `input_size` (None: as trained).
    A setting of the call, not of the model: predictors sharing one model may test at different sizes."""
    if side is None:
        yield
        return
    trained, model.input_size = model.input_size, side
    try:
        yield
    finally:
        model.input_size = trained


def plain(model, x: torch.Tensor) -> torch.Tensor:
    return model(x).float()


def mirrored(model, x: torch.Tensor) -> torch.Tensor:
    """The mean logits of each image and its mirror image."""
    return (plain(model, x) + plain(model, x.flip(-1))) / 2


def mirrored_and_shifted(model, x: torch.Tensor) -> torch.Tensor:
    """airbench's multi-crop: half weight on the image (mirrored), a quarter each on the image
    shifted one pixel up-left and one pixel down-right (reflect padding), each mirrored too."""
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    height, width = x.shape[-2:]
    shifted = [padded[..., :height, :width], padded[..., 2:, 2:]]
    return mirrored(model, x) / 2 + sum(mirrored(model, view) for view in shifted) / 4


TTA = {"none": plain, "hflip": mirrored, "hflip_translate": mirrored_and_shifted}


@PREDICTORS.implement("knn")
class KnnPredictor(TorchPredictor):
    """Scores = neighbour vote shares among the training split's embeddings, for k = self.k
    (the recipe's first k until `select_k` picks one on the validation split)."""

    def __init__(self, recipe: KnnRecipe, data: PreparedData, weights: Path):
        super().__init__(recipe, data, weights)
        self.recipe = recipe
        self.num_classes = data.num_classes
        self.index = torch.as_tensor(self.embeddings(data["train"].images), device=self.device)
        self.index_labels = torch.as_tensor(data["train"].labels, device=self.device)
        self.k = recipe.ks[0]

    def scores(self, images: np.ndarray, batch_size: int = 256, k: int | None = None) -> np.ndarray:
        from smallvision.models.retrieval import knn_scores

        queries = torch.as_tensor(self.embeddings(images, batch_size), device=self.device)
        return knn_scores(self.index, self.index_labels, queries, k or self.k, self.num_classes,
                          self.recipe.knn_metric)

    def select_k(self, images: np.ndarray, labels: np.ndarray, accuracy) -> dict[int, float]:
        """Validation accuracy per k; keeps the best k (the smallest on ties)."""
        by_k = {k: accuracy(labels, self.scores(images, k=k)) for k in self.recipe.ks}
        self.k = max(by_k, key=lambda k: (by_k[k], -k))
        return by_k


LOGREG_FILE = "logreg.npz"  # what logistic regression's fit (smallvision.train.logreg) saves


def flat_pixels(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255


def logreg_scores(saved, images: np.ndarray, num_classes: int) -> np.ndarray:
    """Class probabilities (N, num_classes) of saved logistic-regression arrays; classes absent
    from training score 0; multilabel: a sigmoid per label."""
    from scipy.special import expit
    from sklearn.linear_model import LogisticRegression

    x = (flat_pixels(images) - saved["mean"]) / saved["scale"]
    if bool(saved["multilabel"]):
        return expit(x @ saved["coef"].T + saved["intercept"])
    model = LogisticRegression()
    model.coef_, model.intercept_, model.classes_ = saved["coef"], saved["intercept"], saved["classes"]
    full = np.zeros((len(images), num_classes), dtype=np.float64)
    full[:, model.classes_] = model.predict_proba(x)
    return full


@PREDICTORS.implement("logreg")
class LogRegPredictor:
    WEIGHTS = LOGREG_FILE

    def __init__(self, recipe, data: PreparedData, weights: Path):
        verify(weights)
        try:
            with np.load(weights, allow_pickle=False) as saved:
                self.saved = dict(saved)
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise DamagedFile(weights, f"matches its checksum but is not a readable .npz file ({err})",
                              rebuild_advice(weights)) from None
        self.num_classes = data.num_classes
        self.parameters = int(self.saved["coef"].size + self.saved["intercept"].size)

    def scores(self, images: np.ndarray, batch_size: int = 0) -> np.ndarray:
        return logreg_scores(self.saved, images, self.num_classes)


MAJORITY_FILE = "majority.json"  # what the majority baseline's fit saves: the training split's label shares


@PREDICTORS.implement("majority")
class MajorityPredictor:
    """The trivial baseline: every image gets the training split's label shares as its scores, so
    the most common class wins (multi-label: a label is predicted where its share exceeds 0.5,
    which for sparse labels is "no label"; the shares are the label priors)."""

    WEIGHTS = MAJORITY_FILE

    def __init__(self, recipe, data: PreparedData, weights: Path):
        import json

        verify(weights)
        self.shares = np.asarray(json.loads(weights.read_text())["shares"], dtype=np.float64)
        self.parameters = 0

    def scores(self, images: np.ndarray, batch_size: int = 0) -> np.ndarray:
        return np.tile(self.shares, (len(images), 1))


def load_predictor(recipe, data: PreparedData, folder: Path, test_size_scale: float = 1.0):
    """The predictor of a trained run whose model is in `folder` (data/models/<dataset>-<arm>-s<seed>),
    scoring images at `test_size_scale` x the side it trained at (evaluate.test_size_scale) where it can."""
    predictor = PREDICTORS.implementation(recipe.method)
    path = folder / predictor.WEIGHTS
    _require(path)
    predictor = predictor(recipe, data, path)
    if test_size_scale != 1:
        set_test_size(predictor, test_size_scale)
    return predictor


def set_test_size(predictor, scale: float) -> None:
    """Has the predictor's model resize test images to `scale` x its training side. Recipes that see
    one size only (kNN, logreg, flattening heads) keep it: they are tested as they trained."""
    model = getattr(predictor, "model", None)
    if type(predictor) is TorchPredictor and isinstance(model, Classifier) and model.head.pool_layers == 2:
        predictor.test_size = round(predictor.train_size * scale)


def _require(path: Path) -> None:
    if not path.exists():
        key = path.parent.name  # the run's folder: data/models/<dataset>-<arm>-s<seed>
        raise UserError(f"run '{key}' has no trained model ({path} is missing): run `dvc repro train@{key}`")

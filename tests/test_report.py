"""The report people open, and the predict command, on the end-to-end pipeline's outputs."""

from __future__ import annotations

import json
import shutil
import subprocess

import pandas as pd
import pytest

from smallvision.report.metadata import cpu_identity
from tests.conftest import (
    EVERY_RECIPE,
    PIPELINE,
    commit,
    copy_repo,
    edit_params,
    python_env,
    run,
    runs_for,
    shared_path,
    tiny,
)

CHECK_IMAGES = """<script>
window.addEventListener('load', () => {
  const images = [...document.images];
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const tables = document.querySelectorAll('table.leaderboard').length;
  document.body.setAttribute('data-check', JSON.stringify({images: images.length, broken, tables}));
});
</script></body>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no Chromium here: .ci/run installs Debian's chromium package (apt-get install chromium)")


def headless(browser: str, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120)


@EVERY_RECIPE
def test_report_renders_in_chromium(every_recipe, tmp_path):
    """Open reports/index.html in headless Chromium: every image decodes, the leaderboard is
    there, and a screenshot of the page is taken (tests keep it under their tmp folder)."""
    repo, _ = every_recipe
    browser = chromium()
    page = tmp_path / "checked.html"
    page.write_text((repo / "reports/index.html").read_text().replace("</body>", CHECK_IMAGES))
    dom = headless(browser, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
                   "--dump-dom", page.as_uri())
    check = json.loads(dom.stdout.split('data-check="')[1].split('"')[0].replace("&quot;", '"'))
    assert check["images"] >= 6 and check["broken"] == 0 and check["tables"] == 1, check
    shot = tmp_path / "report.png"
    headless(browser, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400",
             f"--screenshot={shot}", (repo / "reports/index.html").as_uri())
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
    # two chips of one name can give other figures: the report says which one ran
    assert f"- CPU: {cpu_identity()}\n" in (repo / "reports/README.md").read_text()
    assert f"<td>CPU</td><td>{cpu_identity()}</td>" in (repo / "reports/index.html").read_text()


@PIPELINE
def test_predict_prints_top_classes_and_fails_clearly(pipeline, tmp_path):
    repo, _, _ = pipeline
    predictions = pd.read_csv(repo / "reports/eval/tiny-logreg-s0/predictions.csv")
    metrics = json.loads((repo / "reports/metrics.json").read_text())["tiny"]
    params = json.loads(json.dumps(pipeline[1]))
    image = params["datasets"]["tiny"]["root"] + "/" + predictions.file[0]
    env = python_env()
    out = run(["python", "-m", "smallvision.predict", image, "--arm", "logreg", "--json"], cwd=repo, env=env)
    result = json.loads(out.stdout)[0]
    # predict decodes the file as prepare did, so it agrees with the evaluation's prediction
    assert result["top"][0]["class"] == predictions.predicted[0] and len(result["top"]) == 4 and result["seed"] == 0
    text = run(["python", "-m", "smallvision.predict", image], cwd=repo, env=env).stdout
    chosen = max(sorted(metrics), key=lambda arm: metrics[arm]["val_accuracy"])  # on validation, never on test
    assert f"({chosen}, seed " in text
    (tmp_path / "notes.txt").write_text("not an image")
    for args, message in (([str(tmp_path / "notes.txt")], "cannot decode"),
                          ([str(tmp_path / "missing.png")], "no such file"),
                          ([image, "--arm", "no_such_arm"], "no run of arm 'no_such_arm'")):
        failed = run(["python", "-m", "smallvision.predict", *args], cwd=repo, env=env, check=False)
        assert failed.returncode == 2 and message in failed.stderr and len(failed.stderr.splitlines()) == 1


def test_sprites_report_with_gradcam_and_facts(tmp_path):
    """The real sprites (151 classes) with PokeAPI facts: Grad-CAM overlays and fact cards in
    the report, and predict naming the species (as the evaluation did) with its facts."""
    sprites, pokeapi = shared_path("pokemon-sprites-gen1"), shared_path("pokeapi")
    repo = copy_repo(tmp_path / "repo")

    # The README's "your own image folder" command, with two of the default recipes.
    run(["python", "-m", "smallvision.profile", "default", "--folder", str(sprites), "--dataset", "sprites",
         "--image-size", "64"], cwd=repo)

    def two_recipes(params, recipes):
        tiny(params, recipes, epochs=2)
        params["runs"] = runs_for("sprites", ["logreg", "effnet_probe"], definitions=recipes)

    edit_params(repo, two_recipes)
    commit(repo, "tiny")
    # plus the PokeAPI CSVs for the facts, and the Pokémon-150 report's figure to race against
    run(["dvc", "exp", "run", "-S", f"+datasets.sprites.pokeapi={pokeapi}", "-S", "+datasets.sprites.seed_dataset=pokemon150"],
        cwd=repo)
    metrics = json.loads((repo / "reports/metrics.json").read_text())["sprites"]
    prepared = json.loads((repo / "data/prepared/sprites/prepare.json").read_text())
    assert prepared["classes"] == 151 and prepared["images"] > 2000
    assert metrics["logreg"]["accuracy"] > 5 / 151 and metrics["effnet_probe"]["accuracy"] > 0.3
    page = (repo / "reports/index.html").read_text()
    assert "Grad-CAM" in page and 'class="card' in page and "Pokémon" in page
    assert "time to seed&#39;s 0.700 (val; the seed took 133 min)" in page.replace("'", "&#39;")
    assert {"reach_target", "reach_n"} <= set(metrics["effnet_probe"])
    assert (repo / "reports/figures/sprites_gradcam.png").exists()
    predictions = pd.read_csv(repo / "reports/eval/sprites-effnet_probe-s0/predictions.csv")
    right = predictions[predictions.correct].head(3)
    out = run(["python", "-m", "smallvision.predict", *[str(sprites / f) for f in right.file], "--json"],
              cwd=repo, env=python_env())
    results = json.loads(out.stdout)
    assert [r["top"][0]["class"] for r in results] == list(right.actual)
    assert all(r["facts"]["name"] and r["facts"]["types"] and r["facts"]["genus"] for r in results)


def test_the_commit_is_dirty_for_code_changes_not_for_params_yaml(tmp_path, monkeypatch):
    """params.yaml is named by its md5 beside the commit (profile and -S edit it); any other tracked
    file changed makes the commit '(with uncommitted changes)' and is listed, by its path from the
    repository root."""
    from smallvision.report.metadata import git_commit, uncommitted_files

    monkeypatch.chdir(tmp_path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], check=True)
    for name in ("params.yaml", "dvc.lock", "recipes.yaml"):
        (tmp_path / name).write_text("a: 1\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    for name in ("params.yaml", "dvc.lock"):
        (tmp_path / name).write_text("a: 2\n")
    assert git_commit().endswith(tuple("0123456789abcdef"))  # a bare sha
    assert uncommitted_files() == []
    (tmp_path / "recipes.yaml").write_text("a: 2\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert git_commit().endswith(" (with uncommitted changes)")
    assert uncommitted_files() == ["recipes.yaml"]


def figure_text(fig) -> str:
    """Every piece of text a matplotlib figure shows (titles, annotations), as one string."""
    import matplotlib.pyplot as plt

    texts = [fig._suptitle.get_text()] if fig._suptitle else []
    for ax in fig.axes:
        texts += [ax.get_title(), *(text.get_text() for text in ax.texts)]
    plt.close(fig)
    return "\n".join(texts)


def test_the_title_and_the_metadata_are_shown_as_text_not_run_as_html(monkeypatch):
    """report.title is the user's: once "<script>alert(1)</script>" landed verbatim in index.html,
    and a newline in it split the heading. The page's HTML is rendered from this Markdown."""
    from types import SimpleNamespace

    from IPython.display import Markdown
    from nbconvert.filters.markdown import markdown2html

    from smallvision.report import notebook

    shown = []
    monkeypatch.setattr(notebook, "display", shown.append)
    page = object.__new__(notebook.ReportPage)
    page.params = SimpleNamespace(report=SimpleNamespace(title="<script>alert(1)</script>\n# *second* line"), runs={})
    page.results = SimpleNamespace(datasets=[], confidence=0.95)
    page.meta = {"date": "2026-12-07", "device": "cpu", "git_commit": "abc", "params_md5": "0f",
                 "cpu": "<img src=x onerror=alert(2)>", "python": "3.11", "libraries": {"torch": "2.1"}}
    page.title()
    page.metadata()
    html = "".join(markdown2html(item.data) if isinstance(item, Markdown) else item.data for item in shown)
    assert "<script>" not in html and "<img src=x" not in html
    heading = html.split("<h1", 1)[1].split("</h1>", 1)[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; # *second* line" in heading  # one line, as written
    assert "<td>&lt;img src=x onerror=alert(2)&gt;</td>" in html


def test_the_readme_title_and_table_cells_are_text():
    from types import SimpleNamespace

    from smallvision.report.text import markdown_table, readme

    params = SimpleNamespace(report=SimpleNamespace(title="a <b>title</b>\nsplit | in two"))
    results = SimpleNamespace(datasets=[], confidence=0.95)
    meta = {"date": "d", "git_commit": "c", "device": "cpu", "params_md5": "m", "cpu": "x", "python": "3",
            "libraries": {}}
    first = readme(results, params, meta, {"overview": []}).splitlines()[0]
    assert first == "# a &lt;b&gt;title&lt;/b&gt; split \\| in two"
    table = markdown_table(pd.DataFrame({"arm": ["a|b"], "published": ["<i>x</i>"]}))
    assert table.splitlines()[-1] == "| a\\|b | &lt;i&gt;x&lt;/i&gt; |"


def test_the_worst_classes_panel_says_how_many_classes_sit_at_f1_0():
    """A folder of 498 classes of about 6 images: hundreds of classes at F1 = 0 drew ten empty bars."""
    from smallvision.report.figures import worst_classes

    per_class = pd.DataFrame({"class": [f"c{i}" for i in range(498)], "f1": [0.0] * 400 + [0.5] * 98,
                              "support": [1 + i % 3 for i in range(498)]})
    text = figure_text(worst_classes(per_class, 10, "mine: lowest per-class F1"))
    assert "400 of 498 classes have F1 = 0 on the test split" in text and "c2, " in text
    some_zero = per_class.assign(f1=[0.0] * 3 + [0.5] * 495)
    assert "3 of 498 classes at F1 = 0" in figure_text(worst_classes(some_zero, 10, "mine"))


def test_a_dataset_without_a_validation_split_gets_no_empty_validation_chart():
    from smallvision.report.figures import learning_curves_band

    band = pd.DataFrame({"dataset": "mine", "recipe": "mlp", "metric": "train_loss", "step": [1, 2],
                         "mean": [1.0, 0.5], "low": [0.9, 0.4], "high": [1.1, 0.6], "n": 2})
    text = figure_text(learning_curves_band(band, "mine"))
    assert "No validation curve: no run logged a validation accuracy" in text and "val_fraction: 0" in text

"""Pooling the seeds of several SSL pages (smallvision/pool.py): a shared seed is taken once and
only when it is the same run, and pages whose runs had other code or settings do not pool."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from smallvision import docs
from smallvision.core.errors import UserError
from smallvision.pool import (
    check_same_inputs,
    commit_of,
    pooled_results,
    pooled_rows,
    read_pages,
)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"


def row(recipe: str, seed: int, knn: float, method: str = "simsiam", seconds: float = 100.0) -> dict:
    return {"dataset": "d", "ssl_recipe": recipe, "seed": seed, "method": method, "backbone": "cnn", "weights": "none",
            "test_images": 100, "knn20_accuracy": knn, "probe_accuracy": knn, "finetune_accuracy": knn,
            "embedding_spread_start": 0.5, "embedding_spread": 0.5, "pretrain_epochs": 30, "pretrain_seconds": seconds,
            "pretrain_images_per_second": 50.0}


def page(rows: list[dict], commit: str = "abc1234") -> dict:
    return {"confidence": 0.95, "metadata": {"git_commit": commit, "date": "2026-12-02 10:00 UTC", "device": "CPU: x",
                                             "python": "3.11", "libraries": {}},
            "ssl": {"knn_k": [20], "rows": rows}}


def test_committed_pooled_pages_are_their_sources_seeds():
    """Each pooled page is what pooling its sources gives now (checks and all), so a source page
    rerun or edited makes it stale; and it holds every seed of every source, once."""
    pooled = [json.loads(path.read_text()) for path in sorted(RESULTS.glob("*.json"))]
    pooled = [data for data in pooled if data.get("pooled_from")]
    assert pooled, "no pooled results page (python -m smallvision.docs pool ...)"
    for data in pooled:
        sources = [source["study"] for source in data["pooled_from"]]
        assert pooled_rows(read_pages(sources, RESULTS)) == data["ssl"]["rows"], \
            f"docs/results/{data['study']}.json is not what its command pools now: {data['command']}"
        keys = {(r["dataset"], r["ssl_recipe"], r["seed"]) for source in sources
                for r in json.loads((RESULTS / f"{source}.json").read_text())["ssl"]["rows"]}
        assert sorted(keys) == [(r["dataset"], r["ssl_recipe"], r["seed"]) for r in data["ssl"]["rows"]]
        try:
            for source in data["pooled_from"]:
                commit_of(source["study"], {"metadata": {"git_commit": source["commit"]}}, REPO)
        except UserError as missing:  # a shallow clone: the runs' commits, which the checks read, are not here
            pytest.skip(str(missing))
        assert pooled_results(data["study"], sources, RESULTS, repo=REPO) == data, \
            f"docs/results/{data['study']}.json is not what its command pools now: {data['command']}"


def test_a_seed_two_pages_share_is_taken_once_and_the_others_add_up():
    first = page([row("base", 0, 0.2, "none"), row("base", 1, 0.3, "none"), row("ssl", 0, 0.25), row("ssl", 1, 0.3)])
    second = page([row("base", 1, 0.3, "none", seconds=7.0), row("base", 2, 0.1, "none"), row("ssl", 2, 0.2)])
    rows = pooled_rows({"first": first, "second": second})
    assert [(r["ssl_recipe"], r["seed"]) for r in rows] == [("base", 0), ("base", 1), ("base", 2),
                                                             ("ssl", 0), ("ssl", 1), ("ssl", 2)]
    assert rows[1]["pretrain_seconds"] == 100.0  # the first page's run; timings may differ between reruns


def test_a_shared_seed_with_other_figures_is_not_the_same_run():
    first, second = page([row("base", 1, 0.3, "none")]), page([row("base", 1, 0.31, "none")])
    with pytest.raises(UserError, match=r"base seed 1 on d is in first and second with different finetune_accuracy, "
                                        r"knn20_accuracy"):
        pooled_rows({"first": first, "second": second})


def test_pages_of_another_test_split_do_not_pool():
    other = row("ssl", 1, 0.3)
    other["test_images"] = 99
    with pytest.raises(UserError, match=r"d's test split has 100 images in first and 99 in second"):
        pooled_rows({"first": page([row("ssl", 0, 0.2)]), "second": page([other])})


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()


def commit_files(repo: Path, files: dict[str, object]) -> str:
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "x")
    return git(repo, "rev-parse", "--short", "HEAD")


def test_pages_whose_runs_had_other_ssl_code_or_settings_do_not_pool(tmp_path):
    git(tmp_path, "init", "-q")
    stage = {"deps": ["data/prepared/${item.dataset}", "smallvision/ssl", "stages/pretrain.py"]}
    start = commit_files(tmp_path, {
        "dvc.yaml": {"stages": {"prepare": stage, "pretrain": stage, "ssl_evaluate": stage}},
        "ssl.yaml": {"pretrain": {"epochs": 30}, "evaluate": {"knn": {"k": [20]}},
                     "recipes": {"ssl": {"method": "simsiam"}, "other": {"method": "byol"}}},
        "params.yaml": {"prepare": {}, "train": {"lr": 0.1}, "evaluate": {"top_k": 5}},
        "studies/first.yaml": {"datasets": {"d": {"image_size": 64}}},
        "studies/second.yaml": {"datasets": {"d": {"image_size": 64}}},
        "smallvision/ssl/simsiam.py": "loss = 1\n", "stages/pretrain.py": "", "README.md": "x\n"})
    rows = [row("ssl", 0, 0.2)]

    def pool_with(commit: str) -> None:
        check_same_inputs({"first": page(rows, start), "second": page(rows, f"{commit} (with uncommitted changes)")},
                          rows, tmp_path)

    pool_with(commit_files(tmp_path, {"README.md": "y\n", "ssl.yaml": {  # a recipe not pooled may change
        "pretrain": {"epochs": 30}, "evaluate": {"knn": {"k": [20]}},
        "recipes": {"ssl": {"method": "simsiam"}, "other": {"method": "dino"}}}}))
    with pytest.raises(UserError, match=r"SSL stages' code differs .*: smallvision/ssl/simsiam\.py"):
        pool_with(commit_files(tmp_path, {"smallvision/ssl/simsiam.py": "loss = 2\n"}))
    git(tmp_path, "checkout", "-q", start)
    with pytest.raises(UserError, match=r"ran with different ssl\.yaml recipes\.ssl"):
        pool_with(commit_files(tmp_path, {"ssl.yaml": {"pretrain": {"epochs": 30}, "evaluate": {"knn": {"k": [20]}},
                                                       "recipes": {"ssl": {"method": "simsiam", "lr": 1}}}}))
    git(tmp_path, "checkout", "-q", start)
    with pytest.raises(UserError, match=r"ran with different the study's datasets\.d"):
        pool_with(commit_files(tmp_path, {"studies/second.yaml": {"datasets": {"d": {"image_size": 32}}}}))
    with pytest.raises(UserError, match=r"commit f00f00f of second's run is not in"):
        pool_with("f00f00f")

    def pool_uncommitted(files: list[str]) -> None:
        second = page(rows, f"{start} (with uncommitted changes)")
        second["metadata"]["uncommitted"] = files
        check_same_inputs({"first": page(rows, start), "second": second}, rows, tmp_path)

    git(tmp_path, "checkout", "-q", start)
    pool_uncommitted(["README.md", "docs/ssl.md"])  # nothing the SSL stages read
    for read in ("smallvision/ssl/simsiam.py", "studies/second.yaml", "ssl.yaml"):
        with pytest.raises(UserError, match=rf"second's run had uncommitted changes to {re.escape(read)}, which"):
            pool_uncommitted(["README.md", read])


def test_pages_from_another_device_do_not_pool(tmp_path):
    for study, device in (("a", "CPU: x"), ("b", "CPU: y")):
        data = page([row("ssl", 0, 0.2)])
        data["metadata"]["device"] = device
        (tmp_path / f"{study}.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"a and b differ in device \('CPU: x' vs 'CPU: y'\)"):
        pooled_results("ab", ["a", "b"], tmp_path, repo=tmp_path)


def test_pages_from_cpus_of_one_name_but_another_identity_do_not_pool(tmp_path):
    """One label, "CPU: x", on two chips; a page that recorded no identity pools on its label."""
    for study, cpu in (("a", "model 17; torch kernels AVX512"), ("b", None), ("c", "model 1; torch kernels AVX2")):
        data = page([row("ssl", 0, 0.2)])
        data["metadata"]["cpu"] = cpu
        (tmp_path / f"{study}.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"a and c differ in CPU \('model 17; torch kernels AVX512' vs 'model 1; "):
        pooled_results("abc", ["a", "b", "c"], tmp_path, repo=tmp_path)
    with pytest.raises(UserError, match="commit abc1234 of a's run is not in"):  # past the CPU check: a and b agree
        pooled_results("ab", ["a", "b"], tmp_path, repo=tmp_path)


def test_a_pooled_page_names_its_pages_and_a_pooled_name_is_not_a_study(tmp_path, monkeypatch):
    data = {**page([row("base", 0, 0.2, "none"), row("ssl", 0, 0.25)]), "study": "both", "datasets": {},
            "command": "python -m smallvision.docs pool both --from a b",
            "pooled_from": [{"study": "a", "commit": "abc1234", "date": "d1", "seeds": [0]},
                            {"study": "b", "commit": "def5678", "date": "d2", "seeds": [0]}]}
    data["metadata"].pop("git_commit")
    text = docs.results_markdown(data)
    assert "| [a](a.md) | 0 | abc1234 | d1 |" in text and "| [b](b.md) | 0 | def5678 | d2 |" in text
    assert "| ssl | simsiam | cnn (none) | 0 | 0.2500 | +0.050 ± " in text
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit):
        docs.main(["pool", "pokemon150_ssl_cnn_30", "--from", "pokemon150_ssl_cnn_30_simsiam",
                   "pokemon150_ssl_cnn_30_byol"])

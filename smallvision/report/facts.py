"""Pokémon fun facts (PokeAPI) beside predictions, in the report and the predict command."""

from __future__ import annotations

import html
from pathlib import Path

from smallvision.core.errors import UserError


def dataset_facts(cfg, classes: list[str]) -> dict[str, dict] | None:
    """Facts per class when the dataset's classes are Pokémon species and it names a folder of
    PokeAPI CSVs (`pokeapi:`); None otherwise."""
    from smallvision.sources.pokeapi import load_facts, match_species

    if not cfg.pokeapi or not Path(cfg.pokeapi).is_dir():
        return None
    try:
        return dict(zip(classes, match_species(classes, load_facts(cfg.pokeapi), where="report")))
    except UserError:  # not species classes (e.g. a types target): no cards
        return None


def evolution(facts: dict) -> str:
    parts = []
    if facts.get("evolves_from"):
        parts.append(f"evolves from {facts['evolves_from']}")
    if facts.get("evolves_into"):
        parts.append(f"evolves into {', '.join(facts['evolves_into'])}")
    return "; ".join(parts) or "does not evolve"


def sentence_case(text: str) -> str:
    """Upper-case the first letter only (str.capitalize would lower-case the names in it)."""
    return text[:1].upper() + text[1:]


def status(facts: dict) -> str:
    return "mythical" if facts.get("is_mythical") else "legendary" if facts.get("is_legendary") else ""


def fact_lines(facts: dict) -> list[str]:
    stats = facts.get("base_stats", {})
    lines = [
        f"#{facts['id']} {facts['name']}, the {facts['genus']}" + (f" ({status(facts)})" if status(facts) else ""),
        f"type {' / '.join(facts['types'])}; {facts['height_m']:g} m, {facts['weight_kg']:g} kg",
        "base stats " + ", ".join(f"{k} {v}" for k, v in stats.items()) + f" (total {sum(stats.values())})",
        sentence_case(evolution(facts)),
    ]
    return lines


def card_html(facts: dict, image_uri: str, truth: str, predicted: str, probability: float) -> str:
    right = truth == predicted
    lines = "".join(f"<div>{html.escape(line)}</div>" for line in fact_lines(facts)[1:])
    return (
        f'<div class="card {"right" if right else "wrong"}"><img src="{image_uri}" alt="{html.escape(truth)}">'
        f'<div><b>{html.escape(predicted)}</b> {probability:.0%}'
        f'{"" if right else f" (true: {html.escape(truth)})"}'
        f'<div class="genus">{html.escape(fact_lines(facts)[0])}</div>{lines}</div></div>'
    )

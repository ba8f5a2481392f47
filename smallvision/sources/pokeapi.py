"""PokeAPI's public CSV data: Pokémon facts (names, genus, types, size, base stats, colour,
habitat, evolution, legendary flags) for the types targets and the report.

`normalize_name` turns any species name into the folder convention of the sprite datasets
(`Nidoran♀` -> `Nidoran-F`, `Mr. Mime` -> `Mr-Mime`, `Farfetch’d` -> `Farfetchd`,
`Type: Null` -> `Type-Null`); `match_species` joins class folders to the facts with a key
that also ignores case and the leftover punctuation, so `Mr-Mime`, `MrMime` and `mr-mime` all join."""

from __future__ import annotations

import csv
import re
import unicodedata
from pathlib import Path
from typing import Literal

from smallvision.core.errors import UserError
from smallvision.core.registry import did_you_mean
from smallvision.options.schema import Strict
from smallvision.sources.base import SOURCES
from smallvision.sources.download import download

POKEAPI_CSV_URL = "https://raw.githubusercontent.com/PokeAPI/pokeapi/master/data/v2/csv"
CSV_FILES = (
    "pokemon_species.csv", "pokemon_species_names.csv", "pokemon.csv", "pokemon_types.csv", "types.csv",
    "type_names.csv", "pokemon_stats.csv", "stats.csv", "pokemon_colors.csv", "pokemon_habitats.csv",
)
ENGLISH = "9"  # local_language_id of English in PokeAPI
DECIMETRES_PER_METRE = 10
HECTOGRAMS_PER_KILOGRAM = 10
REGIONAL_FORMS = {"alola": "Alolan", "galar": "Galarian", "hisui": "Hisuian", "paldea": "Paldean"}


@SOURCES.register("pokeapi")
class PokeapiSource(Strict):
    """The CSV files the facts need, from PokeAPI's GitHub repository (data/v2/csv). `base_url`
    may point at a fixed commit (…/pokeapi/<commit>/data/v2/csv) or a mirror."""

    kind: Literal["pokeapi"]
    base_url: str = POKEAPI_CSV_URL

    def fetch(self, out_dir: Path) -> dict:
        for name in CSV_FILES:
            download(f"{self.base_url.rstrip('/')}/{name}", out_dir / name, what=f"PokeAPI {name}")
        facts = load_facts(out_dir)  # fails now, not at prepare, if a file is not the CSV expected
        return {"files": len(CSV_FILES), "species": len(facts), "types": len(type_names(out_dir))}


def normalize_name(name: str) -> str:
    """The sprite-folder spelling of a species name: ♀/♂ -> -F/-M, accents dropped, apostrophes
    removed, spaces, dots and colons turned into single dashes."""
    name = name.replace("♀", "-F").replace("♂", "-M")
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    name = re.sub(r"['`]", "", name)  # the curly apostrophe became '' above
    return re.sub(r"[\s.:-]+", "-", name).strip("-")


def species_key(name: str) -> str:
    """What two spellings of one species share: letters and digits of the normalised name, lower case."""
    return re.sub(r"[^a-z0-9]", "", normalize_name(name).lower())


def load_facts(csv_dir: str | Path) -> dict[str, dict]:
    """Facts per species, keyed by `normalize_name` of its English name; regional forms
    (e.g. `Alolan-Sandslash`, as some Kaggle sets name their folders) are entries of their own."""
    try:
        facts = _facts_by_name(_read_tables(Path(csv_dir)))
    except (KeyError, ValueError) as err:  # an error page or another file saved under the CSV's name
        raise UserError(f"{csv_dir} does not hold PokeAPI's CSV files (unexpected content: {err!r}); "
                        "check the pokeapi source's base_url and fetch again") from None
    if not facts:
        raise UserError(f"{csv_dir}: the PokeAPI files list no Pokémon species; check base_url and fetch again")
    return facts


def _facts_by_name(tables: dict[str, list[dict]]) -> dict[str, dict]:
    names = {row["pokemon_species_id"]: row for row in tables["pokemon_species_names"]
             if row["local_language_id"] == ENGLISH}
    species = {row["id"]: row for row in tables["pokemon_species"] if row["id"] in names}
    evolves_into: dict[str, list[str]] = {}
    for row in species.values():
        if row["evolves_from_species_id"]:
            evolves_into.setdefault(row["evolves_from_species_id"], []).append(names[row["id"]]["name"])
    details = {"types": _types_by_pokemon(tables), "stats": _stats_by_pokemon(tables),
               "colours": {row["id"]: row["identifier"] for row in tables["pokemon_colors"]},
               "habitats": {row["id"]: row["identifier"] for row in tables["pokemon_habitats"]}}
    facts = {}
    for form in tables["pokemon"]:
        row = species.get(form["species_id"])
        region = _region_of(form, row)
        if row is None or (form["is_default"] != "1" and region is None):
            continue
        name = names[row["id"]]["name"] if form["is_default"] == "1" else f"{region} {names[row['id']]['name']}"
        facts.setdefault(normalize_name(name), _facts(name, row, form, names, evolves_into, details))
    return facts


def _region_of(form: dict, species: dict | None) -> str | None:
    """'Alolan' for sandslash-alola, and so on; None for other forms."""
    if species is None:
        return None
    suffix = form["identifier"].removeprefix(species["identifier"] + "-").split("-")[0]
    return REGIONAL_FORMS.get(suffix)


def _facts(name: str, species: dict, form: dict, names: dict, evolves_into: dict, details: dict) -> dict:
    evolves_from = species["evolves_from_species_id"]
    return {
        "id": int(species["id"]),
        "name": name,
        "genus": names[species["id"]]["genus"],
        "types": details["types"].get(form["id"], []),
        "height_m": int(form["height"]) / DECIMETRES_PER_METRE,
        "weight_kg": int(form["weight"]) / HECTOGRAMS_PER_KILOGRAM,
        "base_stats": details["stats"].get(form["id"], {}),
        "color": details["colours"].get(species["color_id"]),
        "habitat": details["habitats"].get(species["habitat_id"]),
        "generation": int(species["generation_id"]),
        "evolves_from": names[evolves_from]["name"] if evolves_from else None,
        "evolves_into": evolves_into.get(species["id"], []),
        "is_legendary": species["is_legendary"] == "1",
        "is_mythical": species["is_mythical"] == "1",
    }


def type_names(csv_dir: str | Path) -> list[str]:
    """The English names of the types some Pokémon has (the 18), in PokeAPI's order."""
    tables = _read_tables(Path(csv_dir), ("types", "type_names", "pokemon_types"))
    used = {row["type_id"] for row in tables["pokemon_types"]}
    english = _english_type_names(tables)
    return [english[row["id"]] for row in tables["types"] if row["id"] in used]


def match_species(folder_names: list[str], facts: dict[str, dict], where: str) -> list[dict]:
    """The facts of each class folder, in order; folders that join no species are one error."""
    by_key = {species_key(name): entry for name, entry in facts.items()}
    missing = [name for name in folder_names if species_key(name) not in by_key]
    if missing:
        hints = "; ".join(f"'{name}'{did_you_mean(normalize_name(name), facts)}" for name in missing[:5])
        raise UserError(
            f"{where}: {len(missing)} class folder(s) match no Pokémon species in the PokeAPI data: {hints}. "
            "Folder names must be English species names (e.g. Mr-Mime, Nidoran-F, Farfetchd)"
        )
    return [by_key[species_key(name)] for name in folder_names]


def _read_tables(csv_dir: Path, names=None) -> dict[str, list[dict]]:
    names = names or [file.removesuffix(".csv") for file in CSV_FILES]
    missing = [f"{name}.csv" for name in names if not (csv_dir / f"{name}.csv").is_file()]
    if missing:
        raise UserError(
            f"{csv_dir} lacks the PokeAPI file(s) {', '.join(missing)}: point it at a fetched pokeapi source "
            "(sources: {name: {kind: pokeapi}} fetches them to data/raw/<name>)"
        )
    tables = {}
    for name in names:
        with open(csv_dir / f"{name}.csv", newline="", encoding="utf-8") as handle:
            tables[name] = list(csv.DictReader(handle))
    return tables


def _english_type_names(tables) -> dict[str, str]:
    return {row["type_id"]: row["name"] for row in tables["type_names"] if row["local_language_id"] == ENGLISH}


def _types_by_pokemon(tables) -> dict[str, list[str]]:
    english = _english_type_names(tables)
    slots: dict[str, list[tuple[int, str]]] = {}
    for row in tables["pokemon_types"]:
        slots.setdefault(row["pokemon_id"], []).append((int(row["slot"]), english[row["type_id"]]))
    return {pokemon: [name for _, name in sorted(pairs)] for pokemon, pairs in slots.items()}


def _stats_by_pokemon(tables) -> dict[str, dict[str, int]]:
    stat_names = {row["id"]: row["identifier"] for row in tables["stats"]}
    stats: dict[str, dict[str, int]] = {}
    for row in tables["pokemon_stats"]:
        stats.setdefault(row["pokemon_id"], {})[stat_names[row["stat_id"]]] = int(row["base_stat"])
    return stats

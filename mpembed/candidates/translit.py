"""Rule-based Cyrillic↔Latin brand-name normalisation into comparison keys.

Marketplace sellers type one brand in many scripts and spellings ("Адидас", "adidas", "ADIDAS",
"Ксиаоми", "Сяоми", "Xiaomi"). Two keys per name let spellings meet:

* `translit_key` — a faithful Latin form: the Cyrillic letters go through the `transliterate`
  package's Russian scheme (one maintained table instead of a hand-written one), then a few
  rules that undo the usual differences between a Latin brand and its Russian rendering.
  Equal translit keys almost always mean the same brand.
* `skeleton_key` — a coarse phonetic skeleton of the translit key (vowel groups merged,
  c/k/q and z/s merged, silent h and final e dropped, ...). It joins renderings that differ in
  vowels ("Найк"/"Nike", "Сяоми"/"Xiaomi", "Эппл"/"Apple") at the price of some false matches,
  so `brands.find_brand_candidates` scores a skeleton-only match below a translit match.

Every rule applies to both sides (Latin spellings and transliterated Cyrillic), so a rule only
has to make the two renderings of one brand converge, not to be linguistically exact.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from transliterate import get_translit_function

_RU_TO_LATIN = get_translit_function("ru")

# Cyrillic letters outside the Russian table that sellers type (Ukrainian, Belarusian); without
# this they would be dropped as non-Latin after transliteration.
_EXTRA_CYRILLIC = str.maketrans({"і": "и", "ї": "и", "є": "е", "ў": "у", "ґ": "г"})

# Russian writes я/ю after a vowel where the Latin original has a bare a/u ("Нивея"/"Nivea",
# "Мария"/"Maria"); the Russian table would give "ja"/"ju" there.
_IOTATED_AFTER_VOWEL = re.compile(r"(?<=[аеёиоуыэюя])([яю])")
_DEIOTATE = {"я": "а", "ю": "у"}

# (pattern, replacement, why) applied in order to the lowercase Latin string.
_TRANSLIT_RULES: tuple[tuple[str, str, str], ...] = (
    (r"ph", "f", "Greek ph is ф in Russian: Philips/Филипс"),
    (r"sch", "sh", "German sch is ш (and the Russian table writes щ as sch): Bosch/Бош"),
    (r"ck", "k", "English ck is к: Nick/Ник"),
    (r"x", "ks", "x is кс: Xerox/Ксерокс, Max/Макс"),
    (r"w", "v", "w is в: Wella/Велла, Wildberries/Вайлдберриз"),
    (r"igh", "aj", "English igh is ай: Sunlight/Санлайт, Knight/Найт"),
    (r"ge$", "zh", "a final French -ge is ж: Luxvisage/Люксвизаж, Orange/Оранж"),
    (r"y(?=[aeiou])", "j", "y before a vowel is й/я/ю, which the table writes with j: Toyota/Тойота"),
    (r"(.)\1+", r"\1", "doubled letters are often kept or dropped at will: Phillips/Philips, Gucci/Гучи"),
)

# Rules that turn a translit key into the coarse skeleton, in order.
_SKELETON_RULES: tuple[tuple[str, str, str], ...] = (
    (r"sh", "S", "keep ш as one symbol so that dropping h below does not turn Bosch into Boss"),
    (r"ch", "C", "keep ч as one symbol for the same reason: Chupa/Чупа"),
    (r"zh", "Z", "keep ж as one symbol for the same reason"),
    (r"c(?=[eiy])", "s", "c before e/i/y sounds s: Citroen/Ситроен, Mercedes/Мерседес"),
    (r"[cq]", "k", "other c and q sound k: Calvin/Кельвин"),
    (r"^ks", "s", "initial x (already ks) is rendered с- or кс-: Xiaomi/Сяоми/Ксиаоми"),
    (r"z", "s", "z/s alternate, a final s is voiced in Russian renderings: Wildberries/Вайлдберриз"),
    (r"h", "", "Latin h is often silent and х/h/kh vary: Hyundai/Хендай, Hermes/Эрмес"),
    (r"ts", "s", "ц (ts) renders Latin c before e/i: Concept/Концепт, Citroen/Цитроен"),
    (
        r"(?<=[^aeiouyj])e$",
        "",
        "a final e after a consonant is silent in English/French: Nike/Найк, Apple/Эппл",
    ),
    (
        r"[aeiouyj]+",
        "a",
        "vowel quality varies between renderings (Calvin Klein/Кельвин Кляйн); й/j counts as a vowel: Найк",
    ),
    (
        r"(?<=.....)a$",
        "",
        "a final vowel comes and goes (only after 5 symbols: shorter skeletons would merge Nike/Nokia): Russian endings and colloquial plurals (Лакоста/Lacoste, "
        "Найки/Nike, Конверсы/Converse, Бифри/Befree)",
    ),
    (r"(.)\1+", r"\1", "collapse doubles that the rules above created"),
)

_TRANSLIT_COMPILED = tuple((re.compile(p), r) for p, r, _ in _TRANSLIT_RULES)
_SKELETON_COMPILED = tuple((re.compile(p), r) for p, r, _ in _SKELETON_RULES)
_NON_KEY = re.compile(r"[^a-z0-9]+")

# Skeletons shorter than this (e.g. "LG" -> "lg") match too many unrelated brands to be evidence.
MIN_SKELETON_LEN = 3


def _strip_accents(text: str) -> str:
    """Drop combining marks after NFKD so that "L'Oréal" meets "Лореаль" (applied after
    transliteration: NFKD would also split й into и + breve)."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


def _apply(rules: tuple[tuple[re.Pattern[str], str], ...], text: str) -> str:
    for pattern, repl in rules:
        text = pattern.sub(repl, text)
    return text


@lru_cache(maxsize=1 << 18)
def translit_key(name: str) -> str:
    """Latin comparison key: lowercase, ё→е, Cyrillic transliterated, accents, spaces, apostrophes
    (ь/ъ come out as apostrophes), hyphens and punctuation removed, then `_TRANSLIT_RULES`."""
    text = name.lower().replace("ё", "е").translate(_EXTRA_CYRILLIC)
    text = _IOTATED_AFTER_VOWEL.sub(lambda m: _DEIOTATE[m.group(1)], text)
    text = _strip_accents(_RU_TO_LATIN(text, reversed=True))
    return _apply(_TRANSLIT_COMPILED, _NON_KEY.sub("", text))


@lru_cache(maxsize=1 << 18)
def skeleton_key(name: str) -> str:
    """Coarse phonetic skeleton of `translit_key(name)`; "" when it is too short to be evidence."""
    skeleton = _apply(_SKELETON_COMPILED, translit_key(name))
    return skeleton if len(skeleton) >= MIN_SKELETON_LEN else ""


def rules_doc() -> list[dict[str, str]]:
    """The rules with their reasons, for reports."""
    return [
        {"key": key, "pattern": p, "replacement": r, "why": why}
        for key, rules in (("translit", _TRANSLIT_RULES), ("skeleton", _SKELETON_RULES))
        for p, r, why in rules
    ]

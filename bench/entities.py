"""Entity extraction against hand-labelled sentences: today's capitalised-run rule and spaCy.

    python bench/entities.py [--show] [--labelled bench/entities/holdout.txt]

``bench/entities/labelled.txt`` holds sentences written for this benchmark, each with the
entities a person would name in it (``name = type``). Both extractors run on the same sentences
in the same run; a predicted entity counts when its name matches a labelled one (case and a
leading "the" ignored). ``typed`` is the share of matched entities whose type is also right
(today's types are the graph's ``entity_type`` rules; spaCy's label unless those rules read a
type from the sentence, as the graph does).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memorose_dagster.memory import text  # noqa: E402
from memorose_dagster.memory.graph import entity_type, mention_type, named  # noqa: E402
from memorose_dagster.models.ner import entity_extractor  # noqa: E402

LABELLED = Path(__file__).resolve().parent / "entities" / "labelled.txt"


def load(path: Path) -> list[tuple[str, dict[str, str]]]:
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        sentence, _, gold = line.partition("||")
        labels = dict(tuple(p.strip() for p in item.split(" = ")) for item in gold.split(";")
                      if item.strip())
        rows.append((sentence.strip(), {norm(k): v for k, v in labels.items()}))
    return rows


def norm(name: str) -> str:
    name = name.lower().strip()
    return name[4:] if name.startswith("the ") else name


def today(sentence: str) -> dict[str, str]:
    return {norm(n): entity_type(n, sentence, set()) for n in text.entities(sentence)}


def spacy(sentences: list[str]) -> list[dict[str, str]]:
    extract = entity_extractor()
    return [{norm(n): mention_type(n, kind, s, set()) for n, kind in named(found)}
            for s, found in zip(sentences, extract(sentences), strict=True)]


def score(gold: list[dict[str, str]], predicted: list[dict[str, str]]) -> dict[str, float]:
    tp = sum(len(g.keys() & p.keys()) for g, p in zip(gold, predicted, strict=True))
    typed = sum(g[k] == p[k] for g, p in zip(gold, predicted, strict=True) for k in g.keys() & p)
    n_pred = sum(len(p) for p in predicted)
    n_gold = sum(len(g) for g in gold)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "typed": typed / tp if tp else 0.0, "predicted": n_pred, "labelled": n_gold}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--show", action="store_true", help="print every disagreement")
    parser.add_argument("--labelled", type=Path, default=LABELLED,
                        help="labelled sentences (default: the tune set; "
                             "bench/entities/holdout.txt is the hold-out)")
    args = parser.parse_args()
    rows = load(args.labelled)
    sentences = [s for s, _ in rows]
    gold = [g for _, g in rows]
    t0 = time.perf_counter()
    old = [today(s) for s in sentences]
    old_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    entity_extractor()(["Warm up."])
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    new = spacy(sentences)
    new_s = time.perf_counter() - t0
    results = {"capitalised runs (today)": (score(gold, old), old_s),
               "spaCy en_core_web_sm": (score(gold, new), new_s)}
    print(f"entities: {len(rows)} sentences, {sum(len(g) for g in gold)} labelled entities; "
          f"spaCy loaded in {load_s:.1f} s")
    print(f"{'extractor':26} {'precision':>9} {'recall':>7} {'f1':>6} {'typed':>6} "
          f"{'found':>6} {'ms/sent':>8}")
    for label, (s, seconds) in results.items():
        print(f"{label:26} {s['precision']:9.3f} {s['recall']:7.3f} {s['f1']:6.3f} "
              f"{s['typed']:6.3f} {s['predicted']:6} {1000 * seconds / len(rows):8.2f}")
    for sentence, g, o, n in zip(sentences, gold, old, new, strict=True) if args.show else ():
        if g != n or g.keys() != o.keys():
            print(f"\n{sentence}\n   gold  {g}\n   today {o}\n   spacy {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

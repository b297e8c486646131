"""ListOps (Nangia and Bowman, "ListOps: A Diagnostic Dataset for Latent Tree Learning", NAACL SRW 2018):
nested list operations on single digits, written as token sequences, labelled with their value (10 classes).

    [MAX 2 9 [MIN 4 7 ] 0 ]          -> 9
    [SM [MED 3 8 1 ] 5 [MAX 0 6 ] ]  -> 7     (SM: sum modulo 10; MED: the median, rounded down)

kdrun's embedded text task, for the same reasons MNIST-1D is its signal task: a published generator
(nyu-mll/spinn, ``python/spinn/data/listops/make_data.py``; the Long Range Arena's ListOps task uses the
same one) that runs offline in milliseconds, deterministic from a seed, and a task whose difficulty is set
by depth, so a deeper, wider transformer measurably beats a shallow one (docs/language_models.md has the
numbers). The generator is re-implemented here with the reference's rules and constants (operators MIN,
MAX, MED, SM; a node is a digit with probability 1 - ``tree_p``, else an operator over 2..``max_args``
children; depth capped at ``max_depth``), plus two filters for a classification benchmark: the example must
fit ``max_length`` tokens (with [CLS] and [SEP]) and be an operation (a bare digit is not a list), and
duplicates are dropped as in the reference.
"""

from __future__ import annotations

import random
import statistics

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
VOCAB = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", *(str(d) for d in range(10)), *OPERATORS, END)


def generate_tree(rng: random.Random, depth: int, max_depth: int, tree_p: float, max_args: int):
    """A digit, or ``(operator, [children])``: the reference's generate_tree."""
    if depth >= max_depth or rng.random() > tree_p:
        return rng.randrange(10)
    children = [generate_tree(rng, depth + 1, max_depth, tree_p, max_args) for _ in range(rng.randint(2, max_args))]
    return rng.choice(OPERATORS), children


def value(tree) -> int:
    if isinstance(tree, int):
        return tree
    op, children = tree
    values = [value(c) for c in children]
    if op == "[MIN":
        return min(values)
    if op == "[MAX":
        return max(values)
    if op == "[MED":
        return int(statistics.median(values))
    return sum(values) % 10


def tokens(tree) -> list[str]:
    if isinstance(tree, int):
        return [str(tree)]
    op, children = tree
    return [op, *(t for c in children for t in tokens(c)), END]


def generate(n: int, seed: int, max_length: int = 64, max_depth: int = 4, tree_p: float = 0.25,
             max_args: int = 5) -> tuple[list[str], list[int]]:
    """``n`` distinct examples (texts, labels) of at most ``max_length - 2`` tokens, deterministic from ``seed``."""
    rng = random.Random(seed)
    seen: set[str] = set()
    texts, labels = [], []
    tries = 0
    while len(texts) < n:
        tries += 1
        if tries > 200 * n + 10000:
            raise ValueError(f"ListOps: could not generate {n} distinct examples of at most {max_length} tokens "
                             f"(max_depth={max_depth}); raise dataset.max_length or lower the sizes")
        tree = rng.choice(OPERATORS), [generate_tree(rng, 2, max_depth, tree_p, max_args)
                                        for _ in range(rng.randint(2, max_args))]
        words = tokens(tree)
        text = " ".join(words)
        if len(words) + 2 > max_length or text in seen:
            continue
        seen.add(text)
        texts.append(text)
        labels.append(value(tree))
    return texts, labels

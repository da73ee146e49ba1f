"""The bootstrap rounds (`rounds` in params): which synthesizer each round samples from, how
many snippets it draws and how many candidates it keeps. Snippets of round R come from the pool
without the distillation seeds, in a fixed seeded order, each round taking the next `snippets`
entries in round-key order, so rounds never share a snippet and a round's draw does not depend
on how it is run. Light on purpose: select@R needs no model code."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence


@dataclass
class RoundSpec:
    previous: str  # the synthesizer (train@K key) this round samples from
    snippets: int  # how many pool snippets the round synthesizes for
    select: int  # how many of the round's best candidates select@R keeps (paper: 20K, then 40K)


def round_specs(rounds: dict) -> dict[str, RoundSpec]:
    from scoder.core.params import from_dict

    specs = {}
    for key, value in (rounds or {}).items():
        if not isinstance(key, str):
            # DVC's foreach silently expands nothing for integer keys
            raise ValueError(f"rounds: key {key!r} must be a quoted string such as \"1\"")
        specs[key] = from_dict(RoundSpec, value, f"rounds.{key}")
        if specs[key].snippets < 1 or specs[key].select < 1:
            raise ValueError(f"rounds.{key}: snippets and select must be at least 1")
    return specs


def _rank(seed: int, snippet_id: str) -> str:
    return hashlib.sha256(f"{seed}:{snippet_id}".encode()).hexdigest()


def seeded_order(pool: Sequence[dict], exclude_ids: set[str], seed: int) -> list[dict]:
    """The pool minus `exclude_ids` in a fixed seeded order that does not depend on the pool's
    file order; rounds and the final synthesis take consecutive slices of it."""
    return sorted((s for s in pool if s["id"] not in exclude_ids), key=lambda s: _rank(seed, s["id"]))


def round_snippets(pool: Sequence[dict], exclude_ids: set[str], rounds: dict[str, RoundSpec], key: str, seed: int) -> list[dict]:
    """The pool snippets of round `key`: a seeded order of the pool minus `exclude_ids`,
    sliced after the snippets of the rounds whose keys sort before it."""
    if key not in rounds:
        raise KeyError(f"round '{key}' is not in params 'rounds' ({', '.join(rounds) or 'none'})")
    order = seeded_order(pool, exclude_ids, seed)
    keys = sorted(rounds, key=lambda k: (len(k), k))  # "2" before "10"
    offset = sum(rounds[k].snippets for k in keys[: keys.index(key)])
    chosen = order[offset : offset + rounds[key].snippets]
    if len(chosen) < rounds[key].snippets:
        raise ValueError(f"round {key} wants {rounds[key].snippets} snippets from offset {offset}, the pool has {len(order)}")
    return chosen

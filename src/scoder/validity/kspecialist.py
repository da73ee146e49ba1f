"""The K-Specialist comparison of experiments/validity (seed 002 Table 3 at small scale): the
same instruction set and specialist settings for every K compared."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from scoder.kspecialist.specialists import SpecialistsConfig


@dataclass
class KSpecialistConfig:
    """The `kspecialist` params section: the instruction set, the K values compared (`ks`: key ->
    {k: K}) and the specialists' settings shared by every K (their own `k` is replaced)."""

    data: str = "../../data/teacher/evol-codealpaca-python.jsonl.gz"
    ks: dict = field(default_factory=lambda: {"1": {"k": 1}, "4": {"k": 4}})
    specialists: SpecialistsConfig = field(default_factory=SpecialistsConfig)

    def __post_init__(self):
        for key, item in self.ks.items():
            if not isinstance(item, dict) or not isinstance(item.get("k"), int) or item["k"] < 1:
                raise ValueError(f"kspecialist.ks.{key}: expected {{k: <int >= 1>}}, got {item!r}")

    def specialists_for(self, key: str) -> SpecialistsConfig:
        if key not in self.ks:
            raise KeyError(f"kspecialist.ks has no key {key!r}")
        return replace(self.specialists, k=int(self.ks[key]["k"]))

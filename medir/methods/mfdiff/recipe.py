"""Train an MFdiff model file from a YAML recipe (configs/mfdiff/*.yaml): simulate, two stages, save.

    python -m medir.methods.mfdiff.recipe configs/mfdiff/tiny.yaml -o runs/mfdiff_tiny [--force]

The result is a medir model file for ``medir restore PET --aux MR --model runs/mfdiff_tiny``. medir's generic
training loop (``medir train``) reads paired or simulated single-image data; PET/MR pairs go through this recipe.
Unknown keys are errors.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from medir.errors import ConfigError, MedirError


@dataclass(frozen=True)
class DataRecipe:
    size: int = 128                 # phantom grid (256 mm field of view)
    external_subjects: int = 4      # train-split subjects (external stage)
    internal_subjects: int = 2      # val-split subjects, shifted protocol (internal stage)
    slices: int = 8                 # axial slices per subject


@dataclass(frozen=True)
class StageRecipe:
    steps: int = 200
    batch: int = 4
    crop: int | None = 32
    lr: float = 1e-3


@dataclass(frozen=True)
class Recipe:
    variant: str = "mfdiff"
    size: str = "tiny"
    network: dict = field(default_factory=dict)
    data: DataRecipe = DataRecipe()
    external: StageRecipe = StageRecipe()
    internal: StageRecipe = StageRecipe(steps=100)
    seed: int = 0


def _typed(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(values).__name__}")
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(names)})")
    sub = {"data": DataRecipe, "external": StageRecipe, "internal": StageRecipe}
    kw = {k: _typed(sub[k], v, f"{where}.{k}") if cls is Recipe and k in sub else v for k, v in values.items()}
    return cls(**kw)


def load_recipe(path: str | Path) -> Recipe:
    """The recipe in YAML file ``path``; ConfigError for unknown keys or an unknown variant / size."""
    import yaml

    from medir.methods.mfdiff import SIZES, VARIANTS

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read recipe {path}: {err}") from err
    recipe = _typed(Recipe, raw, Path(path).name)
    if recipe.variant not in VARIANTS or recipe.size not in SIZES:
        raise ConfigError(f"{path}: variant must be one of {', '.join(VARIANTS)} and size one of {', '.join(SIZES)}")
    return recipe


def run_recipe(recipe: Recipe, out: str | Path, *, force: bool = False, log_every: int = 0) -> Path:
    """Simulate the external and internal sets, train both stages, write the model file to ``out``."""
    import torch

    from medir.methods.mfdiff import build
    from medir.methods.mfdiff.data import INTERNAL_SHIFT, simulate_pairs
    from medir.methods.mfdiff.modelfile import save_network
    from medir.methods.mfdiff.train import fit

    if Path(out).exists() and not force:
        raise MedirError(f"{out} exists: pass --force to replace it")
    d = recipe.data
    external = simulate_pairs("train", size=d.size, subjects=d.external_subjects, slices=d.slices, seed=recipe.seed)
    internal = simulate_pairs("val", size=d.size, subjects=d.internal_subjects, slices=d.slices,
                              protocol=INTERNAL_SHIFT, seed=recipe.seed + 1)
    torch.manual_seed(recipe.seed)
    net = build(recipe.variant, recipe.size, **recipe.network)
    stage_logs = {}
    for name, data, stage in (("external", external, recipe.external), ("internal", internal, recipe.internal)):
        if stage.steps:
            losses = fit(net, data, steps=stage.steps, batch=stage.batch, lr=stage.lr, crop=stage.crop,
                         seed=recipe.seed + len(stage_logs), log_every=log_every)
            stage_logs[name] = {"steps": stage.steps, "pairs": len(data), "final_loss": float(sum(losses[-10:]) /
                                                                                           len(losses[-10:]))}
    return save_network(out, net, training={"recipe": asdict(recipe), "stages": stage_logs}, force=force)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Train an MFdiff model file from a recipe")
    p.add_argument("recipe")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--force", action="store_true")
    args = p.parse_args(argv)
    try:
        path = run_recipe(load_recipe(args.recipe), args.output, force=args.force, log_every=50)
    except MedirError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

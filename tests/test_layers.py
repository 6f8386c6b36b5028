"""The layer contract covers the whole library: a new module must be given its place in pyproject.toml's order (a
module left out of it would be free to import anything). `lint-imports` in ./test.sh checks the order itself."""

import pkgutil
import tomllib

import mnist_models
from mnist_models.paths import REPO_ROOT


def test_every_top_level_module_of_the_library_has_a_place_in_the_layer_contract():
    contracts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (library,) = [contract for contract in contracts if contract.get("containers") == ["mnist_models"]]
    placed = {name.strip() for layer in library["layers"] for name in layer.split("|")}
    modules = {module.name for module in pkgutil.iter_modules(mnist_models.__path__)} - {"__main__"}
    assert modules - placed == set(), "add these to the layers in pyproject.toml"
    assert placed - modules == set(), "the contract names modules that no longer exist"

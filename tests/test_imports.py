"""No import cycle anywhere in the suite's packages, imports inside functions included (import-linter's
contracts in pyproject.toml check the layers; a cycle can cross them, as contract -> bundles -> registry ->
replications -> contract once did)."""

import grimp

PACKAGES = ("fer_common", "replications", "recipes", "studies")


def test_no_import_cycle():
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    closing = [
        (importer, imported)
        for importer in sorted(graph.modules)
        for imported in sorted(graph.find_modules_directly_imported_by(importer))
        if graph.find_shortest_chain(importer=imported, imported=importer)
    ]
    assert not closing, f"imports that close a cycle: {closing}"

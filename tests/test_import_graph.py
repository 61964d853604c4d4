"""No import circles in satclip_tg, counting imports inside functions.

Every ``import`` and ``from ... import`` statement of every module is an edge
of the module graph, wherever it sits in the file (module level, functions,
``if TYPE_CHECKING:`` blocks), with relative imports resolved. A package's
``__init__`` is the module named after the package. Imports by string through
`importlib.import_module` are not edges: that is how the plugin manager loads
the built-in plugin modules, and how the lazy public names are resolved.
"""

import ast
import pathlib

import satclip_tg

PACKAGE = 'satclip_tg'
ROOT = pathlib.Path(satclip_tg.__file__).parent


def module_files() -> dict[str, pathlib.Path]:
    modules = {}
    for path in sorted(ROOT.rglob('*.py')):
        parts = list(path.relative_to(ROOT.parent).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts.pop()
        modules['.'.join(parts)] = path
    return modules


def imported_modules(
    name: str, path: pathlib.Path, modules: dict[str, pathlib.Path]
) -> set[str]:
    is_package = path.name == '__init__.py'
    # The package that relative imports start from.
    package = name if is_package else name.rpartition('.')[0]
    found: set[str] = set()

    def add(target: str) -> None:
        # The innermost satclip_tg module that the dotted name points into.
        while target and target not in modules:
            target = target.rpartition('.')[0]
        if target:
            found.add(target)

    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split('.')
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = '.'.join(base_parts)
                source = f'{base}.{node.module}' if node.module else base
            else:
                source = node.module or ''
            if not source.startswith(PACKAGE):
                continue
            for alias in node.names:
                # `from pkg import submodule` imports the submodule.
                candidate = f'{source}.{alias.name}'
                add(candidate if candidate in modules else source)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {
        name: imported_modules(name, path, modules) for name, path in modules.items()
    }


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        # Iterative, so that a deep graph cannot hit the recursion limit.
        nonlocal counter
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def shortest_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One shortest circle through the first module of a component, to print."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph[node] & members):
            if child == start:
                return [*paths[node], start]
            if child not in paths:
                paths[child] = [*paths[node], child]
                queue.append(child)
    return component


def test_the_graph_sees_every_kind_of_import() -> None:
    graph = import_graph()
    # Module level, relative.
    assert 'satclip_tg.location.encoder' in graph['satclip_tg.location.api']
    # `from . import module` and function-level imports.
    assert 'satclip_tg.plugins.hookspecs' in graph['satclip_tg.plugins.manager']
    assert 'satclip_tg.plugins.builtins' in graph['satclip_tg.plugins.manager']
    # Imports by string are not edges.
    assert 'satclip_tg.location.api' not in graph['satclip_tg.location.encoder']


def test_find_cycles_finds_a_circle() -> None:
    graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}
    assert find_cycles(graph) == [['a', 'b', 'c']]
    assert shortest_cycle(graph, ['a', 'b', 'c']) == ['a', 'b', 'c', 'a']


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = find_cycles(graph)
    report = '\n'.join(
        ' -> '.join(shortest_cycle(graph, component))
        + f'\n    ({len(component)} modules: {", ".join(component)})'
        for component in cycles
    )
    assert not cycles, f'import circles in satclip_tg:\n{report}'

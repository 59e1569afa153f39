"""DEVELOPING.md's map is the house's plan: every module has its row, and a room imports only the rooms its row allows
(at the top of the module or inside a function alike), so the layers stay layers and a reader can follow one path."""
import ast, re
from pathlib import Path

ROOT = Path(__file__).parents[1]

def _map_rows() -> dict:
    "module -> (notebook, rooms it may import) from the table under '## Map' in DEVELOPING.md."
    text = (ROOT/'DEVELOPING.md').read_text()
    table = text[text.index('## Map'):].split('\n\n')[1]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        notebook, module, allowed = cells[0], cells[1], cells[3]
        rows[module] = (notebook, set(re.findall(r'\w+', re.sub(r'\(.*?\)|nothing', '', allowed))))   # (notes) are not rooms
    return rows

def _imports(module: str) -> set:
    "The package's rooms that `module` imports, wherever the import statement is."
    tree = ast.parse((ROOT/'electra_gdes'/f'{module}.py').read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            name = node.module if node.level == 0 else f'electra_gdes.{node.module}'
            if name.startswith('electra_gdes.'): found.add(name.split('.')[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split('.')[1] for a in node.names if a.name.startswith('electra_gdes.')}
    return found - {module}

def test_every_module_has_its_row_and_notebook():
    rows = _map_rows()
    modules = {p.stem for p in (ROOT/'electra_gdes').glob('*.py') if not p.stem.startswith('_')}
    assert set(rows) == modules, f'rows without a module: {sorted(set(rows) - modules)}; modules without a row: {sorted(modules - set(rows))}'
    for module, (notebook, _) in rows.items():
        assert (ROOT/'nbs'/f'{notebook}.ipynb').exists(), (module, notebook)

def test_each_room_imports_only_what_its_row_allows():
    rows = _map_rows()
    wrong = {m: sorted(_imports(m) - allowed) for m, (_, allowed) in rows.items() if _imports(m) - allowed}
    assert not wrong, f'imports the map does not allow (move the code, or change the plan in DEVELOPING.md): {wrong}'

def test_the_plan_has_no_cycle():
    "The allowed imports form layers: no room may (through others) import itself."
    allowed = {m: a for m, (_, a) in _map_rows().items()}
    def reach(m, seen):
        for n in allowed.get(m, ()):
            if n == start: return True
            if n not in seen:
                seen.add(n)
                if reach(n, seen): return True
        return False
    for start in allowed: assert not reach(start, set()), f'{start} may import itself through others'

def test_walkthroughs_export_nothing():
    "A notebook without a number (Pretrain, Finetune_GLUE, ...) is a tutorial: no `default_exp`, no exported cell."
    import json
    walkthroughs = [p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name[0].isdigit() and p.stem != 'index']
    assert {p.stem for p in walkthroughs} >= {'Pretrain', 'Finetune_GLUE', 'Finetune_SQuAD', 'Sharing_Study'}
    exporting = [f'{p.name} cell {i}' for p in walkthroughs for i, c in enumerate(json.loads(p.read_text())['cells'])
                 if re.search(r'^#\|\s*(export|exports|exporti|default_exp)\b', ''.join(c['source']), re.M)]
    assert not exporting, f'walkthroughs must export nothing (move the code to a numbered notebook): {exporting}'

def test_the_readme_layout_names_every_notebook():
    "README's Layout lists every notebook (the numbered ones in reading order, then the walkthroughs): a new one is not forgotten."
    text = (ROOT/'README.md').read_text()
    layout = text[text.index('## Layout'):]
    named = re.findall(r'`(\w+)`', layout[:layout.index('Outputs, all git-ignored')])
    numbered = sorted(p.stem for p in (ROOT/'nbs').glob('[0-9]*.ipynb'))
    walkthroughs = {p.stem for p in (ROOT/'nbs').glob('*.ipynb') if not p.name[0].isdigit() and p.stem != 'index'}
    assert [n for n in named if n[0].isdigit()] == numbered
    assert walkthroughs <= set(named), sorted(walkthroughs - set(named))

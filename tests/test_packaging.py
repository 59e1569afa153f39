"Packaging: every library the code imports is declared, the locks satisfy the declared ranges, LICENSE, the GPU check's smoke mode."
import ast, functools, importlib.metadata as md, os, re, subprocess, sys, tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']

def _reqs(lines): return {canonicalize_name(r.name): r for r in map(Requirement, lines)}
CORE = _reqs(PYPROJECT['dependencies'])
OPTIONAL = {canonicalize_name(r.name): r for extra in PYPROJECT['optional-dependencies'].values() for r in map(Requirement, extra)}

def _imports(path):
    "(top-level module name, at module level?) of every absolute import in `path`."
    tree, out = ast.parse(path.read_text()), []
    def visit(node, top):
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import): out.extend((a.name.split(".")[0], top) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0: out.append((child.module.split('.')[0], top))
            visit(child, inner)
    visit(tree, True)
    return out

@functools.cache
def _module_distributions(): return md.packages_distributions()

def _distributions(module):
    "The installed distributions that provide top-level `module`."
    return {canonicalize_name(d) for d in _module_distributions().get(module, [])}

def test_every_third_party_import_is_declared():
    missing, seen = [], set()
    for f in sorted((ROOT/'electra_gdes').glob('*.py')):
        for mod, top in _imports(f):
            if mod in sys.stdlib_module_names or mod in ('electra_gdes', '__future__'): continue
            dists = _distributions(mod)
            assert dists, f'{f.name} imports {mod}, which no installed distribution provides'
            seen |= dists
            # module-level imports run on `import electra_gdes.X`: they must be core dependencies;
            # imports inside functions (optional trackers, lazy CLI imports) may come from an extra
            declared = CORE if top else CORE | OPTIONAL
            if not dists & declared.keys(): missing.append(f"{f.name}: {mod} ({'/'.join(sorted(dists))}, {'module level' if top else 'in a function'})")
    assert not missing, 'imported but not declared in pyproject.toml:\n' + '\n'.join(missing)
    # the libraries the issue names are really imported (and so checked above)
    assert {'torch', 'transformers', 'fastai', 'numpy', 'pandas', 'pyarrow', 'matplotlib'} <= seen

def _lock(path):
    pins = {}
    for line in (ROOT/path).read_text().splitlines():
        line = line.split('#')[0].strip()
        if not line: continue
        name, _, ver = line.partition('==')
        assert ver, f'{path}: {line!r} is not a name==version pin'
        pins[canonicalize_name(name)] = Version(ver)
    return pins

# declared but deliberately not in the CPU lock, and why
NOT_IN_CPU_LOCK = {}   # none today (quarto-cli was, until the docs site moved to Sphinx: PyPI has only an sdist that downloads quarto)

def test_lock_pins_satisfy_declared_ranges():
    pins = _lock('requirements/cpu.lock')
    bad = []
    for name, req in {**OPTIONAL, **CORE}.items():
        if name in NOT_IN_CPU_LOCK: continue
        if name not in pins: bad.append(f'{name}: declared ({req}) but not in requirements/cpu.lock'); continue
        # a local label (+cpu) is the same release for a range
        if not req.specifier.contains(Version(pins[name].public), prereleases=True): bad.append(f'{name}=={pins[name]} is outside {req}')
    assert not bad, '\n'.join(bad)
    assert 'torchvision' not in pins, 'torchvision must not be in the CPU lock (its wheels are CUDA builds that break the CPU torch)'

def test_gpu_constraints_pin_a_matching_pair():
    pins = _lock('requirements/gpu-constraints.txt')
    assert set(pins) == {'torch', 'torchvision'}
    # torchvision 0.N pairs with torch 2.(N-15) since torchvision 0.15 / torch 2.0
    assert pins['torchvision'].minor == pins['torch'].minor + 15 and pins['torch'].major == 2
    assert CORE['torch'].specifier.contains(pins['torch'])
    assert Version(_lock('requirements/cpu.lock')['torch'].public) == pins['torch'], 'the GPU pin should be the torch the CPU lock tests'

def test_installed_versions_match_lock():
    "The venv the tests run in is the lock (so a test pass says something about the pinned versions)."
    pins, off = _lock('requirements/cpu.lock'), []
    for name in ('torch', 'transformers', 'fastai', 'fastcore', 'datasets', 'tokenizers', 'tensorboard', 'wandb', 'sphinx', 'myst-nb'):
        if name not in pins: continue
        try: got = Version(md.version(name))
        except md.PackageNotFoundError: off.append(f'{name} not installed'); continue
        if got != pins[name]: off.append(f'{name} {got} installed, lock has {pins[name]}')
    assert not off, 'run scripts/setup.sh: ' + '; '.join(off)

def test_license_is_apache():
    text = (ROOT/'LICENSE').read_text()
    assert 'Apache License' in text and 'Version 2.0, January 2004' in text and 'END OF TERMS AND CONDITIONS' in text
    assert PYPROJECT['license'] == 'Apache-2.0' and 'LICENSE' in PYPROJECT['license-files']
    assert any(c.startswith('Topic :: Scientific/Engineering') for c in PYPROJECT['classifiers'])

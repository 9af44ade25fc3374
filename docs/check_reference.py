"""MkDocs hook: keep the hand-written pages honest, and let them link to repository files.

Each check logs a warning, so ``mkdocs build --strict`` (CI) fails when a page drifts from the code:

1. **Options.** Every ``--ntk-*`` option named on any page must be one the plugin registers (read
   from ``pytest_ntk.plugin.pytest_addoption`` itself, with a recording parser), and
   ``reference/options.md`` must list every registered option, every ini key, every key of a
   ``[tool.pytest_ntk.profiles.NAME]`` table, and every option of the ``pytest-ntk report`` and
   ``python -m pytest_ntk.seedcheck`` command lines; ``reference/index.md`` must list every name of
   ``pytest_ntk.__all__``.
2. **Names.** After the build, every name in the ``__all__`` of every module of ``pytest_ntk`` (and
   every lazily exported name of the package itself) must have an anchor in the built reference:
   a new public name without a ``:::`` directive that renders it fails the build.
   A module whose public names no page renders yet is not left out: it is rendered on a generated
   page, "Other modules" (and listed at INFO level), until someone gives it a place.
3. **Links to repository files.** A Markdown link from a page to a file outside ``docs/`` (e.g.
   ``../../.github/workflows/audit.yml``) works on GitHub as written. For the built site the file
   is copied under ``repo/`` and the link pointed at the copy; a link to ``claims/<suite>/README.md``
   goes to the generated page of that suite instead. A link to a file that does not exist is a
   warning.
"""

from __future__ import annotations

import ast
import logging
import os
import re
from pathlib import Path

from mkdocs.structure.files import File, InclusionLevel

log = logging.getLogger("mkdocs.hooks.check_reference")

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pytest_ntk"
OPTIONS_PAGE = "reference/options.md"
NAMES_PAGE = "reference/index.md"
_OPTION = re.compile(r"--ntk-[a-z][a-z-]*[a-z]")
_LINK = re.compile(r"(\]\()([^)\s]+)(\))")
_ID = re.compile(r'id="(pytest_ntk(?:\.[A-Za-z0-9_]+)*)"')


# ---------------------------------------------------------------------------- what the code registers
class _Recorder:
    def __init__(self):
        self.options: dict[str, str] = {}
        self.ini: dict[str, str] = {}

    def getgroup(self, *args, **kwargs):
        return self

    def addoption(self, *names, **kwargs):
        for name in names:
            self.options[name] = kwargs.get("help", "")

    def addini(self, name, help, **kwargs):  # noqa: A002 - pytest's own argument name
        self.ini[name] = help


def registered() -> _Recorder:
    from pytest_ntk import plugin

    rec = _Recorder()
    plugin.pytest_addoption(rec)
    return rec


def cli_options(path: Path) -> set[str]:
    """The ``--long`` options an argparse command line in ``path`` adds (read with :mod:`ast`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("--"):
                    found.add(arg.value)
    return found


def profile_keys() -> set[str]:
    from pytest_ntk.harness.profiles import _PROFILE_KEYS

    return set(_PROFILE_KEYS)


# ---------------------------------------------------------------------------- public names
def _all_of(tree: ast.Module) -> list[str] | None:
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in stmt.targets):
            if isinstance(stmt.value, (ast.List, ast.Tuple)):
                return [e.value for e in stmt.value.elts if isinstance(e, ast.Constant)]
    return None


def public_names() -> dict[str, list[str]]:
    """``{module path: names of its __all__}`` for every module of the package, read with :mod:`ast`."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names = _all_of(ast.parse(path.read_text(encoding="utf-8")))
        if names:
            out[".".join(parts)] = names
    import pytest_ntk

    lazy = getattr(pytest_ntk, "_LAZY", {})
    out["pytest_ntk"] = [n for n in pytest_ntk.__all__ if n not in lazy]
    # a lazy name is documented where it is defined
    for name, (module, attr) in lazy.items():
        target = module if attr is None else f"{module}.{attr}"
        out.setdefault("<lazy>", []).append(target)
    return out


def _documented(module: str, name: str, ids: set[str]) -> bool:
    if module == "<lazy>":  # ``name`` is the full path of the object the package exports lazily
        return name in ids
    if f"{module}.{name}" in ids:
        return True
    # re-exported: rendered where it is defined, or by a parent package that re-exports it
    scope = module.rsplit(".", 1)[0] if "." in module else module
    return any(i.startswith(scope + ".") and i.endswith("." + name) for i in ids)


# ---------------------------------------------------------------------------- placing modules
_DIRECTIVE = re.compile(r"^:::\s+(\S+)\s*$")
OTHER_PAGE = "reference/other.md"
_UNPLACED: list[str] = []


def directives(docs: Path) -> dict[str, bool]:
    """``{identifier: renders its members}`` of every ``::: identifier`` directive on the reference pages."""
    found: dict[str, bool] = {}
    for md in sorted((docs / "reference").rglob("*.md")):
        lines = md.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            m = _DIRECTIVE.match(line)
            if not m:
                continue
            options = []
            for nxt in lines[i + 1:]:
                if not nxt.startswith(" ") or not nxt.strip():
                    break
                options.append(nxt.strip())
            found[m.group(1)] = found.get(m.group(1), False) or "members: false" not in options
    return found


def module_paths() -> set[str]:
    """Every module of the package, by dotted path."""
    out = set()
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        out.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def unplaced(docs: Path) -> list[str]:
    """What to render on the generated page: the identifiers of public names that no ``:::``
    directive renders (directly, through a package that renders and re-exports them, or through the
    submodule that defines them). A module that no page mentions at all is rendered whole; from a
    module that has a directive, only the missing names."""
    names = {m: n for m, n in public_names().items() if m not in ("<lazy>", "pytest_ntk")}
    modules = module_paths()
    shown = directives(docs)

    def placed(module: str, name: str, depth: int = 0) -> bool:
        if shown.get(module) or f"{module}.{name}" in shown:
            return True
        parts = module.split(".")
        for k in range(len(parts) - 1, 1, -1):  # a parent package that renders and re-exports it
            parent = ".".join(parts[:k])
            if shown.get(parent) and name in names.get(parent, ()):
                return True
        if depth < 3:  # a package re-exporting a submodule's name: placed where the submodule is
            for sub, sub_names in names.items():
                if sub.startswith(module + ".") and name in sub_names and placed(sub, name, depth + 1):
                    return True
        return False

    missing = [(m, n) for m, ns in names.items() for n in ns if not placed(m, n)]
    whole = {m for m, _ in missing if m not in shown}
    whole |= {f"{m}.{n}" for m, n in missing if f"{m}.{n}" in modules and f"{m}.{n}" not in shown}
    single = {f"{m}.{n}" for m, n in missing
              if m not in whole and f"{m}.{n}" not in whole and not any(m.startswith(w + ".") for w in whole)}
    return sorted(whole | single)


def on_config(config, **kwargs):
    _UNPLACED[:] = unplaced(Path(config.docs_dir).resolve())
    if _UNPLACED and config.nav:
        for item in config.nav:
            if isinstance(item, dict) and "Reference" in item and isinstance(item["Reference"], list):
                item["Reference"].append({"Other modules": OTHER_PAGE})
    return config


def _other_page() -> str:
    lines = ["# Other modules", "",
             "Public modules and names that no other reference page renders yet (the documentation "
             "build places them here by itself, until they are given a place).", ""]
    for identifier in _UNPLACED:
        lines += [f"::: {identifier}", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- links out of docs/
_COPIES: dict[str, str] = {}  # repository path -> site path


def _outside_links(md_path: Path, text: str, docs: Path):
    for match in _LINK.finditer(text):
        target = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
            continue
        path_part = target.split("#", 1)[0]
        if not path_part:
            continue
        resolved = Path(os.path.normpath(md_path.parent / path_part))
        try:
            resolved.relative_to(docs)
            continue  # inside docs/: mkdocs validates it
        except ValueError:
            pass
        yield match, target, resolved


def on_files(files, config, **kwargs):
    docs = Path(config.docs_dir).resolve()
    if _UNPLACED:
        log.info(f"rendered on {OTHER_PAGE} for want of a place on a reference page: {', '.join(_UNPLACED)}")
        files.append(File.generated(config, OTHER_PAGE, content=_other_page()))
    _COPIES.clear()
    for md in sorted(docs.rglob("*.md")):
        for _, target, resolved in _outside_links(md, md.read_text(encoding="utf-8"), docs):
            try:
                rel = resolved.relative_to(ROOT).as_posix()
            except ValueError:
                log.warning(f"{md.relative_to(docs)}: link {target!r} leaves the repository")
                continue
            if re.fullmatch(r"claims/[^/]+/README\.md", rel):
                continue  # points at the generated suite page instead
            if not resolved.is_file():
                continue  # reported by on_page_markdown, with the page
            if rel not in _COPIES:
                _COPIES[rel] = f"repo/{rel}"
                copy = File.generated(config, _COPIES[rel], content=resolved.read_bytes())
                copy.inclusion = InclusionLevel.INCLUDED  # mkdocs leaves out dot-folders (.github) by default
                files.append(copy)
    return files


def on_page_markdown(markdown, page, config, files, **kwargs):
    docs = Path(config.docs_dir).resolve()
    src = docs / page.file.src_uri
    known = registered()

    for option in sorted(set(_OPTION.findall(markdown))):
        if option not in known.options:
            log.warning(f"{page.file.src_uri}: names {option}, which pytest-ntk does not register")

    if page.file.src_uri == OPTIONS_PAGE:
        wanted = [f"`{o}" for o in known.options] + [f"`{k}`" for k in known.ini]
        wanted += [f"`{k}`" for k in profile_keys()]
        wanted += [f"`{o}" for o in cli_options(PACKAGE / "__main__.py") | cli_options(PACKAGE / "seedcheck.py")]
        for w in sorted(wanted):
            if w not in markdown:
                log.warning(f"{OPTIONS_PAGE} does not list {w.strip('`')}")

    if page.file.src_uri == NAMES_PAGE:
        import pytest_ntk

        for name in pytest_ntk.__all__:
            if f"| `{name}` |" not in markdown:
                log.warning(f"{NAMES_PAGE} does not list pytest_ntk.{name} in its table of the package's names")

    def rewrite(match: re.Match) -> str:
        target = match.group(2)
        path_part, _, anchor = target.partition("#")
        resolved = Path(os.path.normpath(src.parent / path_part))
        try:
            resolved.relative_to(docs)
            return match.group(0)
        except ValueError:
            pass
        try:
            rel = resolved.relative_to(ROOT).as_posix()
        except ValueError:
            return match.group(0)
        suite = re.fullmatch(r"claims/([^/]+)/README\.md", rel)
        if suite:
            site_path = f"claims/{suite.group(1)}.md"
            if not (docs.parent / "claims" / suite.group(1) / "README.md").is_file():
                log.warning(f"{page.file.src_uri}: links to {rel}, which does not exist")
        elif rel in _COPIES:
            site_path = _COPIES[rel]
        else:
            log.warning(f"{page.file.src_uri}: links to {rel}, which does not exist in the repository")
            return match.group(0)
        new = os.path.relpath(docs / site_path, src.parent).replace(os.sep, "/")
        return f"{match.group(1)}{new}{'#' + anchor if anchor else ''}{match.group(3)}"

    return _LINK.sub(rewrite, markdown)


def on_post_build(config, **kwargs):
    site = Path(config.site_dir)
    ids: set[str] = set()
    for html in site.rglob("*.html"):
        ids.update(_ID.findall(html.read_text(encoding="utf-8", errors="replace")))
    for module, names in public_names().items():
        for name in names:
            if not _documented(module, name, ids):
                where = name if module == "<lazy>" else f"{module}.{name}"
                log.warning(f"the reference does not render the public name {where} (add a ::: directive)")

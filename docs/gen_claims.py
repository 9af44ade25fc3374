"""MkDocs hook: the claims library pages, generated at build time so that they never go stale.

Sources, all read from the repository at build time (nothing is copied by hand):

- ``claims/baseline.json`` -- the committed verdict of every claim (quick profile, seed 0; what CI
  gates on): verdict, decisive measurement, measured/predicted, CI, rivals;
- the ``@pytest.mark.claim(...)`` markers of ``claims/*/test_*.py`` (on the test, or carried by a
  ``pytest.param(..., marks=...)``), read with :mod:`ast` (never imported, so no JAX): the claim's source, statement and ``expect``. ``${setting}`` fields of a
  statement are filled from the suite's ``quick`` settings (its conftest's ``SETTINGS``, also read
  with :mod:`ast`) by the harness's own ``format_statement``;
- ``claims/*/README.md`` -- each suite's own description, included whole.

Output: ``claims/<suite>.md`` (one page per suite) and the summary table that replaces the
``<!-- claims-summary -->`` line of ``docs/claims/index.md``. The nav entry ``claims/index.md`` is
expanded into the index and one entry per suite. A claim in the baseline that no marker declares,
or a marker id with no baseline entry, is shown as such on the index page (the audit's baseline gate,
not this build, is what fails on it).
"""

from __future__ import annotations

import ast
import json
import logging
import operator
import re
from pathlib import Path

from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.gen_claims")

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = ROOT / "claims"
BASELINE = CLAIMS / "baseline.json"
PLACEHOLDER = "<!-- claims-summary -->"
VERDICTS = ("HOLDS", "FAILS", "INCONCLUSIVE", "ERROR", "SKIPPED")


# ---------------------------------------------------------------------------- reading the sources
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}


class _Unknown(Exception):
    pass


def _evaluate(node: ast.AST, names: dict):
    """A literal expression: constants, containers, arithmetic, ``**dict`` and module-level names."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        raise _Unknown(node.id)
    if isinstance(node, (ast.List, ast.Tuple)):
        values = [_evaluate(e, names) for e in node.elts]
        return values if isinstance(node, ast.List) else tuple(values)
    if isinstance(node, ast.Dict):
        out = {}
        for k, v in zip(node.keys, node.values):
            if k is None:
                out.update(_evaluate(v, names))
            else:
                out[_evaluate(k, names)] = _evaluate(v, names)
        return out
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_evaluate(node.left, names), _evaluate(node.right, names))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand, names)
    raise _Unknown(ast.dump(node)[:60])


def _module_constants(tree: ast.Module) -> dict:
    """Module-level ``NAME = <literal expression>`` assignments, in order (later ones may use earlier)."""
    names: dict = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            try:
                names[stmt.targets[0].id] = _evaluate(stmt.value, names)
            except (_Unknown, TypeError, ValueError, ZeroDivisionError):
                pass
    return names


def _claim_call(node, names: dict, fn: str, path: Path, when: dict) -> tuple[str, dict] | None:
    """``(claim id, info)`` of one ``pytest.mark.claim(...)`` call, or None when it is something else."""
    if not (isinstance(node, ast.Call) and ast.unparse(node.func) in ("pytest.mark.claim", "mark.claim")):
        return None
    try:
        claim_id = _evaluate(node.args[0], names)
    except (_Unknown, IndexError):
        return None
    info = {"test": fn, "file": path.relative_to(ROOT).as_posix(), "when": when}
    for kw in node.keywords:
        try:
            value = _evaluate(kw.value, names)
        except _Unknown:
            value = None
        if kw.arg is None:  # **kwargs from a module-level dict
            info.update(value if isinstance(value, dict) else {})
        else:
            info[kw.arg] = value
    return claim_id, info


def _markers(path: Path) -> dict[str, list[dict]]:
    """``{claim id: [info, ...]}`` of the claim markers in one test file, read with :mod:`ast`.

    ``info`` holds ``source``, ``statement``, ``expect``, the test's name and file, and ``when``:
    ``{}`` for a marker on the test itself, ``{param: value}`` for one carried by
    ``pytest.param(value, marks=pytest.mark.claim(...))`` (it applies to those cases only).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = _module_constants(tree)
    found: dict[str, list[dict]] = {}
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for deco in fn.decorator_list:
            direct = _claim_call(deco, names, fn.name, path, {})
            if direct:
                found.setdefault(direct[0], []).append(direct[1])
                continue
            if not (isinstance(deco, ast.Call) and ast.unparse(deco.func).endswith("mark.parametrize")
                    and len(deco.args) >= 2 and isinstance(deco.args[1], (ast.List, ast.Tuple))):
                continue
            try:
                argname = _evaluate(deco.args[0], names)
            except _Unknown:
                continue
            for value in deco.args[1].elts:
                if not (isinstance(value, ast.Call) and ast.unparse(value.func).endswith("param") and value.args):
                    continue
                argnames = [a.strip() for a in str(argname).split(",")]  # "kernel, form": one value each
                try:
                    when = {a: _evaluate(v, names) for a, v in zip(argnames, value.args)}
                except _Unknown:
                    when = {}
                for kw in value.keywords:
                    if kw.arg != "marks":
                        continue
                    marks = kw.value.elts if isinstance(kw.value, (ast.List, ast.Tuple)) else [kw.value]
                    for mark in marks:
                        found_one = _claim_call(mark, names, fn.name, path, when)
                        if found_one:
                            found.setdefault(found_one[0], []).append(found_one[1])
    return found


def _marker_for(case_id: str, infos: list[dict]) -> dict:
    """The marker info that applies to a claim case (``id[k=v,...]``): the one whose ``when`` matches."""
    params = {}
    if "[" in case_id:
        for part in case_id.split("[", 1)[1].rstrip("]").split(","):
            k, _, v = part.partition("=")
            params[k] = v
    for info in infos:
        if all(params.get(k) == str(v) for k, v in info["when"].items()):
            return info
    return infos[0] if infos else {}


def _quick_settings(conftest: Path) -> dict | None:
    """The suite's ``SETTINGS["quick"]``, when its conftest writes it as a literal expression."""
    if not conftest.is_file():
        return None
    settings = _module_constants(ast.parse(conftest.read_text(encoding="utf-8"))).get("SETTINGS")
    if isinstance(settings, dict) and isinstance(settings.get("quick"), dict):
        return settings["quick"]
    return None


def _statement(claim_id: str, statement, settings: dict | None) -> str:
    if not isinstance(statement, str):
        return "(built at run time; see the test file)"
    if settings is None or "${" not in statement:
        return statement
    from pytest_ntk.harness.spec import format_statement  # the harness's own rule (imports no JAX)

    try:
        return format_statement(claim_id, statement, {"suite": settings}, "quick")
    except Exception:  # noqa: BLE001 - a field the static reading cannot fill stays as written
        return statement


# ---------------------------------------------------------------------------- formatting
def _num(x) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)


def _text(text) -> str:
    """Plain text from a marker or the baseline, shown as written in Markdown: ``<x, x'>`` is not an
    HTML tag, ``0.5*mean|d| + 0.02*mean`` no emphasis."""
    text = str(text).replace("\\", "\\\\")
    for c in "*_`[":
        text = text.replace(c, "\\" + c)
    return text.replace("<", "&lt;")


def _cell(text: str) -> str:
    return _text(text).replace("|", "\\|").replace("\n", " ")


def _base(claim_id: str) -> str:
    return claim_id.split("[", 1)[0]


def _says(expect, verdict, expect_profiles=None) -> str:
    """"Source says" for the baseline's verdict (quick profile): nothing where the marker's
    ``expect_profiles`` leave the quick profile out."""
    if isinstance(expect_profiles, str):
        expect_profiles = [expect_profiles]
    if not expect or (expect_profiles is not None and "quick" not in expect_profiles):
        return "—"
    if verdict not in ("HOLDS", "FAILS"):
        return expect
    return f"{expect} ({'agrees' if verdict.lower() == expect else 'contradicts'})"


def _rivals(entry: dict) -> str:
    rivals = entry.get("rivals") or {}
    if not rivals:
        return "—"
    out = sum(v == "FAILS" for v in rivals.values())
    return f"{out}/{len(rivals)}"


def _suite_title(readme: Path, suite: str) -> str:
    if readme.is_file():
        for line in readme.read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return suite


def _readme_body(readme: Path) -> str:
    """The README without its title, every heading one level down (it sits under an h2 here)."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    out, fenced = [], False
    for line in lines:
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if not fenced and re.match(r"#{1,5} ", line):
            line = "#" + line
        out.append(line)
    return "\n".join(out).strip()


# ---------------------------------------------------------------------------- the pages
class Library:
    def __init__(self):
        data = json.loads(BASELINE.read_text(encoding="utf-8"))
        self.run = data.get("run", {})
        self.entries: dict[str, dict] = data["claims"]
        self.suites: dict[str, dict] = {}
        for folder in sorted(p for p in CLAIMS.iterdir() if p.is_dir() and any(p.glob("test_*.py"))):
            markers = {}
            for test_file in sorted(folder.glob("test_*.py")):
                markers.update(_markers(test_file))
            self.suites[folder.name] = {
                "folder": folder, "markers": markers, "settings": _quick_settings(folder / "conftest.py"),
                "title": _suite_title(folder / "README.md", folder.name),
            }
        self.problems: list[str] = []
        declared = {cid: s for s, suite in self.suites.items() for cid in suite["markers"]}
        for cid in self.entries:
            if _base(cid) not in declared:
                self.problems.append(f"claims/baseline.json has {cid!r}, which no claim marker in claims/ declares")
        for cid, suite in declared.items():
            if not any(_base(e) == cid for e in self.entries):
                self.problems.append(f"claim {cid!r} (claims/{suite}/) has no entry in claims/baseline.json")

    def entries_of(self, suite: str) -> dict[str, dict]:
        folder = f"claims/{suite}/"
        return {cid: e for cid, e in self.entries.items()
                if str(e.get("nodeid", "")).startswith(folder) or _base(cid) in self.suites[suite]["markers"]}

    def run_line(self) -> str:
        r = self.run
        commit = str(r.get("git_commit") or "")[:10] or "?"
        return (f"profile `{r.get('profile', '?')}`, `--ntk-seed {r.get('seed', '?')}`, recorded {r.get('time', '?')} "
                f"at commit `{commit}`")

    @staticmethod
    def counts(entries) -> dict[str, int]:
        counts = {v: 0 for v in VERDICTS}
        for e in entries:
            counts[e.get("verdict", "ERROR")] = counts.get(e.get("verdict", "ERROR"), 0) + 1
        return counts

    def summary(self) -> str:
        lines = [
            f"Verdicts of `claims/baseline.json` ({self.run_line()}), read when this site was built.",
            "",
            "| suite | claims | HOLDS | FAILS | INCONCLUSIVE | ERROR |",
            "|---|---|---|---|---|---|",
        ]
        total = []
        for suite, info in self.suites.items():
            entries = list(self.entries_of(suite).values())
            total += entries
            c = self.counts(entries)
            lines.append(f"| [{_cell(info['title'])}]({suite}.md) | {len(entries)} | {c['HOLDS']} | {c['FAILS']} | "
                         f"{c['INCONCLUSIVE']} | {c['ERROR']} |")
        c = self.counts(total)
        lines.append(f"| **all** | **{len(total)}** | **{c['HOLDS']}** | **{c['FAILS']}** | "
                     f"**{c['INCONCLUSIVE']}** | **{c['ERROR']}** |")
        if self.problems:
            lines += ["", "!!! note \"The baseline and the claims differ\"", ""]
            lines += [f"    - {_cell(p)}" for p in self.problems]
        return "\n".join(lines)

    def page(self, suite: str) -> str:
        info = self.suites[suite]
        entries = self.entries_of(suite)
        markers = info["markers"]
        c = self.counts(entries.values())
        counted = ", ".join(f"{n} {v}" for v, n in c.items() if n)
        out = [
            f"# {info['title']}",
            "",
            f"Folder `claims/{suite}/`: {len(markers)} claim tests, {len(entries)} claims with their parameters. "
            f"Quick verdicts from `claims/baseline.json` ({self.run_line()}): **{counted or 'none'}**.",
            "",
            "Run them: `uv run pytest claims/" + suite + "` (add `-v` for one line per claim, "
            "`--ntk-html report.html` for the report with plots).",
            "",
            "## Latest quick verdicts",
            "",
            "Generated from `claims/baseline.json` when this site was built. \"Measured vs predicted\" is the "
            "decisive measurement (for a slope: the fitted exponent; CI: its confidence interval); "
            "\"rivals out\" counts the named rival predictions the measurement rejected "
            "([rivals](../howto/rivals.md)).",
            "",
            f"| claim (`{suite}.`…) | verdict | source says | measurement | measured vs predicted | CI | rivals out |",
            "|---|---|---|---|---|---|---|",
        ]
        for cid, e in entries.items():
            m = _marker_for(cid, markers.get(_base(cid), []))
            ci = e.get("ci")
            ci_text = f"[{_num(ci[0])}, {_num(ci[1])}]" if ci else "—"
            short = cid[len(suite) + 1:] if cid.startswith(suite + ".") else cid
            out.append(
                f"| `{short}` | **{e.get('verdict')}** | {_says(m.get('expect'), e.get('verdict'), m.get('expect_profiles'))} | "
                f"{_cell(e.get('measurement') or '—')} | {_num(e.get('measured'))} vs {_num(e.get('predicted'))} | "
                f"{ci_text} | {_rivals(e)} |")
        out += ["", "## The claims", ""]
        for cid, infos in markers.items():
            m = infos[0]
            cases = {k: v for k, v in entries.items() if _base(k) == cid}
            out += [f"### `{cid}`", ""]
            out += [f"**Statement** (quick profile): {_text(_statement(cid, m.get('statement'), info['settings']))}", ""]
            if m.get("source"):
                out += [f"**Source**: {_text(m['source'])}", ""]
            for variant in infos:
                when = ", ".join(f"`{k}={v}`" for k, v in variant["when"].items())
                out.append(f"**Source says**{' (cases with ' + when + ')' if when else ''}: "
                           f"{variant.get('expect') or '— (no `expect`)'}  ")
            out += [f"**Test**: `{m['file']}::{m['test']}`", ""]
            if not cases:
                out += ["*Not in `claims/baseline.json` yet: it has no committed verdict.*", ""]
            for case, e in cases.items():
                rivals = e.get("rivals") or {}
                rival_text = "; ".join(f"{_text(name)}: {'ruled out' if v == 'FAILS' else v}" for name, v in rivals.items())
                tol = e.get("tolerance")
                out.append(
                    f"- `{case}`: **{e.get('verdict')}** -- {_cell(e.get('measurement') or '')}: measured "
                    f"{_num(e.get('measured'))}, predicted {_num(e.get('predicted'))}, gap {_num(e.get('gap'))}"
                    + (f", tolerance {_num(tol)}" if tol is not None else "")
                    + f", margin {_num(e.get('margin'))}"
                    + (f", CI [{_num(e['ci'][0])}, {_num(e['ci'][1])}]" if e.get("ci") else "")
                    + (f"; rivals: {rival_text}" if rival_text else ""))
            out.append("")
        readme = info["folder"] / "README.md"
        if readme.is_file():
            out += [
                "## The suite's README",
                "",
                f"`claims/{suite}/README.md`, included as it is. Its numbers were written by the suite's authors "
                "when they ran it; the table above is the committed baseline.",
                "",
                _readme_body(readme),
            ]
        return "\n".join(out) + "\n"


_LIBRARY: Library | None = None


def _library() -> Library:
    global _LIBRARY
    if _LIBRARY is None:
        _LIBRARY = Library()
    return _LIBRARY


def on_config(config, **kwargs):
    global _LIBRARY
    _LIBRARY = None  # re-read on every build (mkdocs serve rebuilds)
    library = _library()
    suites = list(library.suites)

    def expand(items):
        for i, item in enumerate(items):
            if isinstance(item, dict):
                ((title, value),) = item.items()
                if value == "claims/index.md":
                    pages = [{library.suites[s]["title"].split(" — ")[0]: f"claims/{s}.md"} for s in suites]
                    items[i] = {title: ["claims/index.md", *pages]}
                elif isinstance(value, list):
                    expand(value)

    if config.nav:
        expand(config.nav)
    return config


def on_files(files, config, **kwargs):
    library = _library()
    for suite in library.suites:
        files.append(File.generated(config, f"claims/{suite}.md", content=library.page(suite)))
    for problem in library.problems:
        log.info(problem)  # shown on the claims index page; the audit's baseline gate is what enforces it
    return files


def on_page_markdown(markdown, page, config, files, **kwargs):
    if page.file.src_uri == "claims/index.md":
        if PLACEHOLDER not in markdown:
            log.warning(f"docs/claims/index.md lacks the {PLACEHOLDER} line that the summary table replaces")
        return markdown.replace(PLACEHOLDER, _library().summary())
    return markdown

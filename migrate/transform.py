"""The codemod: one trial file's ``LightningAdapter`` subclass becomes a Core API script.

The class becomes a plain class that builds the module and the loaders (the old context's calls
rewritten, see :mod:`.rewrite_context`); ``core_loop.py`` beside it trains; ``main()`` ties them
to ``det.core.init()``. What cannot be converted gets a ``# TODO(migrate-trial CODE)`` comment
(:mod:`.todos`) and the rest still migrates. A file with no trial comes back unchanged.

Only the statements that hold the trial or a ``determined`` name are walked: the rest of a file
is parsed and printed, nothing more, which keeps the codemod near libcst's parse-and-print cost.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import libcst as cst

from .classes import ClassInfo, Kind, _record_import, find_classes, kind_of_name
from .errors import SourceError
from .findings import Finding
from .positions import locate
from .rewrite_context import Todo, TrialRewriter, qualify
from .rewrite_imports import add_import, remove_unused, used_names
from .rules import check_class, trigger_tokens
from .source import parse
from .todos import CODES, LINE_LENGTH, todo_findings
from .walk import iter_nodes

__all__ = ["MigrationResult", "migrate_module", "migrate_source"]

_MAIN = """def main() -> None:
    settings = core_loop.RunSettings.from_args()  # length and periods: the entrypoint's arguments
    info = {det}.get_cluster_info()
    if info is None:  # off-cluster: hparams and data from {where}
{local}
    with {det}.core.init(distributed=core_loop.distributed_context()) as core_context:
        context = core_loop.TrialContext.create(info, core_context)
        core_loop.seed_everything(context.trial_seed)
        trial = {trial}(context)
        core_loop.train(core_context, context, settings, trial, info.latest_checkpoint)


if __name__ == "__main__":
    main()
"""
_PLACEHOLDER = "__migrated_trial__"
_SKIPPED_LINT = frozenset({"LA312"})  # repeated data module hooks: a note, not a conversion


@dataclass(frozen=True)
class MigrationResult:
    """One file's migration: the new text, the trial it held, the TODOs left, what changed."""

    path: str
    source: str
    code: str
    trial: str | None
    findings: tuple[Finding, ...]
    changes: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return self.code != self.source


def migrate_source(
    source: str,
    *,
    path: str = "<string>",
    config_name: str = "const.yaml",
    local_modules: Collection[str] = (),
) -> MigrationResult:
    """Migrate one trial file's text; ``config_name``: the config that references the trial,
    relative to the file's folder (``main()`` reads it off-cluster). ``local_modules``: the
    modules beside the file, sorted into the first-party import section.

    Raises :class:`SourceError` for a syntax error, two trials in one file, or a file whose
    names the script needs are taken (``main``, a ``__main__`` block)."""
    module = parse(source, path)
    return migrate_module(module, source, path, lambda _trial: config_name, local_modules)


def migrate_module(
    module: cst.Module,
    source: str,
    path: str,
    config_for: Callable[[str], str],
    local_modules: Collection[str] = (),
) -> MigrationResult:
    """:func:`migrate_source` on a parsed module; ``config_for(trial_name)`` names the config
    (it may raise :class:`SourceError` when no config references the trial)."""
    classes = find_classes(module)
    trials = [info for info in classes if info.kind is Kind.TRIAL]
    names = _with_stars(module, classes[0].names) if classes else {}
    dynamic = _dynamic_classes(module, classes, names)
    if not trials and not dynamic:
        return MigrationResult(path, source, source, None, tuple(todo_findings(source, path)), ())
    if len(trials) > 1:
        line, column = locate(module, [trials[1].node.name])[id(trials[1].node.name)]
        first = locate(module, [trials[0].node.name])[id(trials[0].node.name)][0]
        raise SourceError(
            path,
            f"a second LightningAdapter trial `{trials[1].name}` (the first, "
            f"`{trials[0].name}`, is at line {first}); a migrated script has one main(): "
            "split the file, one trial per file, each named by its own config's entrypoint",
            line,
            column,
        )
    trial = trials[0] if trials else None
    config = _config(trial, config_for, module, path) if trial is not None else ""
    if trial is not None:
        _check_free_names(module, path)
    todos = _lint_todos(source, classes, trial)
    for node in dynamic:
        subject = f"`{node.name.value}`'s base class"
        todos.setdefault(id(node), []).append(("LA421", subject, CODES["LA421"].fix))
    rewriter = TrialRewriter(
        names, trial.node if trial is not None else None, todos, module.default_indent
    )
    targets = {id(node) for node in dynamic} | ({id(trial.node)} if trial else set())
    determined = {name for name, target in names.items() if target.startswith("determined")}
    # Only statements that hold the trial or a determined name are walked; the others cannot
    # keep a determined import alive (except by a string, e.g. in __all__).
    flat: list[cst.BaseStatement] = []
    walked: list[cst.BaseStatement] = []
    for stmt in module.body:
        if _needs_visit(stmt, targets, determined):
            new = stmt.visit(rewriter)
            if isinstance(new, cst.BaseStatement):
                walked.append(new)
                flat.append(new)
        else:
            flat.append(stmt)
    changes: list[str] = []
    if trial is not None:
        used = used_names(walked) | {n for n in determined if _quoted(n, source)}
        package = _package(path, config)
        flat, import_changes = _fix_imports(flat, used, rewriter, local_modules, path, package)
        changes.extend(_describe(trial.name, rewriter))
        changes.extend(import_changes)
        script = list(_main(trial.name, config, _det_name(flat), module).body)
        script[0] = script[0].with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()])
        flat.extend(script)
        changes.append(f"added main() and a __main__ guard; off-cluster it reads {config}")
    elif rewriter.edits.todos:
        changes.append(f"{rewriter.edits.todos} TODO comment(s) added")
    code = module.with_changes(body=flat).code
    findings = tuple(todo_findings(code, path))
    return MigrationResult(
        path, source, code, trial.name if trial else None, findings, tuple(changes)
    )


def _config(
    trial: ClassInfo, config_for: Callable[[str], str], module: cst.Module, path: str
) -> str:
    try:
        return config_for(trial.name)
    except SourceError as exc:
        if exc.line is not None:
            raise
        line, column = locate(module, [trial.node.name])[id(trial.node.name)]
        raise SourceError(exc.path, exc.reason, line, column) from None


_STAR_NAMES = {
    "determined.pytorch": ("DataLoader", "PyTorchTrialContext"),
    "determined.pytorch.lightning": ("LightningAdapter",),
}


def _with_stars(module: cst.Module, names: Mapping[str, str]) -> Mapping[str, str]:
    """``names`` plus what ``from determined.pytorch[.lightning] import *`` binds that the
    rewrite knows (a name bound explicitly wins)."""
    extra: dict[str, str] = {}
    for stmt in module.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if (
                isinstance(small, cst.ImportFrom)
                and isinstance(small.names, cst.ImportStar)
                and small.module is not None
                and not small.relative
            ):
                source = cst.Module([]).code_for_node(small.module)
                extra.update({n: f"{source}.{n}" for n in _STAR_NAMES.get(source, ())})
    return {**extra, **names} if extra else names


def _quoted(name: str, source: str) -> bool:
    return f'"{name}"' in source or f"'{name}'" in source


def _needs_visit(stmt: cst.CSTNode, targets: set[int], determined: set[str]) -> bool:
    if id(stmt) in targets:
        return True
    for node in iter_nodes(stmt, (cst.ClassDef, cst.Name)):
        if id(node) in targets or (isinstance(node, cst.Name) and node.value in determined):
            return True
    return False


def _dynamic_classes(
    module: cst.Module, classes: Sequence[ClassInfo], names: Mapping[str, str]
) -> list[cst.ClassDef]:
    """Classes whose base is computed from LightningAdapter (``class T(pick(LightningAdapter))``,
    ``Base = LightningAdapter; class T(Base)``): no safe rewrite, a TODO instead."""
    adapters = {name for name, target in names.items() if kind_of_name(target) is Kind.TRIAL}
    if not adapters:
        return []
    for stmt in module.body:  # `Base = LightningAdapter` and the like
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Assign) and _mentions(small.value, adapters, names):
                    adapters.update(
                        t.target.value for t in small.targets if isinstance(t.target, cst.Name)
                    )
    found: list[cst.ClassDef] = []
    for info in classes:
        if info.kind is None and any(_mentions(a.value, adapters, names) for a in info.node.bases):
            found.append(info.node)
    return found


def _mentions(expr: cst.BaseExpression, adapters: set[str], names: Mapping[str, str]) -> bool:
    for node in iter_nodes(expr, (cst.Name, cst.Attribute)):
        assert isinstance(node, cst.Name | cst.Attribute)
        if isinstance(node, cst.Name) and node.value in adapters:
            return True
        if kind_of_name(qualify(node, names) or "") is Kind.TRIAL:
            return True
    return False


def _lint_todos(
    source: str, classes: Sequence[ClassInfo], trial: ClassInfo | None
) -> dict[int, list[Todo]]:
    """The lint rules' findings in the trial (LA401-LA405, removed Lightning APIs) as TODOs."""
    todos: dict[int, list[Todo]] = {}
    if trial is None:
        return todos
    datamodules = {info.name: info.node for info in classes if info.kind is Kind.DATAMODULE}
    for found in check_class(trial, Kind.TRIAL, trigger_tokens(source), datamodules):
        if found.hook.code not in _SKIPPED_LINT:
            todo = (found.hook.code, found.subject, found.hook.fix)
            todos.setdefault(id(found.node), []).append(todo)
    return todos


def _check_free_names(module: cst.Module, path: str) -> None:
    """``main`` and a ``__main__`` block are the script's; a file that has them is stopped."""
    for stmt in module.body:
        taken: str | None = None
        where: cst.CSTNode | None = None
        if isinstance(stmt, cst.FunctionDef | cst.ClassDef) and stmt.name.value == "main":
            taken, where = "defines `main`; rename it", stmt.name
        elif isinstance(stmt, cst.If) and "__main__" in cst.Module([]).code_for_node(stmt.test):
            taken = 'has an `if __name__ == "__main__":` block; move that code out of the file'
            where = stmt.test
        if taken is not None and where is not None:
            line, column = locate(module, [where])[id(where)]
            raise SourceError(
                path,
                f"the file {taken}: the migrated script adds its own main(), then rerun",
                line,
                column,
            )


def _bindings(body: Sequence[cst.BaseStatement]) -> dict[str, str]:
    aliases: dict[str, str] = {}
    stars: list[str] = []
    for stmt in body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                _record_import(small, aliases, stars)
    return aliases


def _fix_imports(
    body: list[cst.BaseStatement],
    used: set[str],
    rewriter: TrialRewriter,
    local_modules: Collection[str],
    path: str,
    package: str = "",
) -> tuple[list[cst.BaseStatement], list[str]]:
    body, removed = remove_unused(body, used)
    local = {*local_modules, "core_loop", package.partition(".")[0]} - {""}
    bound = _bindings(body)
    wanted: list[tuple[str, str | None]] = [("pathlib", None)]
    if bound.get("det", "determined") == "determined":
        wanted.append(("determined", "det"))
    else:  # `det` is another module's: main() spells it out
        wanted.append(("determined", None))
    if rewriter.edits.loaders:
        wanted.append(("torch.utils.data", None))
    # In a package the script runs as `python3 -m pkg.model_def` (see migrate.config).
    wanted.append((f"{package}.core_loop", "core_loop") if package else ("core_loop", None))
    added: list[str] = []
    for dotted, asname in wanted:
        name = asname or dotted.split(".")[0]
        if _imported(body, dotted, asname):
            continue
        if name in bound and bound[name] != dotted.split(".")[0]:
            raise SourceError(
                path,
                f"the name `{name}` is bound to `{bound[name]}`, but the migrated script needs "
                f"it for `{dotted}`; rename it, then rerun",
            )
        body = add_import(body, dotted, asname, local)
        added.append(f"import {dotted}" + (f" as {asname}" if asname else ""))
    changes = []
    if removed:
        changes.append("removed unused imports: " + ", ".join(removed))
    if added:
        changes.append("added imports: " + ", ".join(added))
    return body, changes


def _package(path: str, config: str) -> str:
    """``pkg`` for ``pkg/model_def.py`` named by ``../const.yaml`` (``pkg.model_def:Trial``):
    the folders between the config and the script, dotted; "" beside it."""
    parts = PurePosixPath(config).parts
    up = len(parts) - len(tuple(itertools.dropwhile(lambda part: part == "..", parts)))
    folders = Path(path).resolve().parent.parts
    return ".".join(folders[len(folders) - up :]) if up else ""


def _imported(body: Sequence[cst.BaseStatement], dotted: str, asname: str | None) -> bool:
    for stmt in body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if isinstance(small, cst.Import):
                for alias in small.names:
                    bound_as = alias.asname.name if alias.asname else None
                    got = bound_as.value if isinstance(bound_as, cst.Name) else None
                    name = cst.Module([]).code_for_node(alias.name)
                    if name == dotted and got == asname:
                        return True
    return False


def _det_name(body: Sequence[cst.BaseStatement]) -> str:
    return "det" if _bindings(body).get("det") == "determined" else "determined"


def _main(trial: str, config: str, det: str, module: cst.Module) -> cst.Module:
    template, placeholder = _main_template(
        config, det, module.default_indent, module.default_newline
    )
    replaced = template.deep_replace(placeholder, cst.Name(trial))
    assert isinstance(replaced, cst.Module)  # the placeholder is a Name inside it
    return replaced


@functools.lru_cache(maxsize=64)
def _main_template(config: str, det: str, indent: str, newline: str) -> tuple[cst.Module, cst.Name]:
    """``main()`` parsed once per layout; the trial's name is put in by :func:`_main`."""
    if "/" in config:
        target, where = f'pathlib.Path(__file__).parent / "{config}"', "the trial's config"
    else:
        target, where = (
            f'pathlib.Path(__file__).with_name("{config}")',
            "the config beside this script",
        )
    local = f"        info = core_loop.local_cluster_info({target})"
    if len(local) > LINE_LENGTH:
        local = f"        config = {target}\n        info = core_loop.local_cluster_info(config)"
    text = _MAIN.format(det=det, trial=_PLACEHOLDER, local=local, where=where)
    if indent != "    ":
        text = re.sub("^(?:    )+", lambda m: indent * (len(m[0]) // 4), text, flags=re.M)
    text = text.replace("\n", newline)
    parsed = cst.parse_module(
        text, config=cst.PartialParserConfig(default_indent=indent, default_newline=newline)
    )
    found = [
        n
        for n in iter_nodes(parsed, (cst.Name,))
        if isinstance(n, cst.Name) and n.value == _PLACEHOLDER
    ]
    return parsed, found[0]


def _describe(name: str, rewriter: TrialRewriter) -> list[str]:
    edits = rewriter.edits
    out = [f"`{name}` is a plain class (its LightningAdapter base is removed)"]
    if edits.super_init:
        out.append("super().__init__(...) became self.lightning_module = ... (and precision)")
    if edits.context_calls:
        out.append(f"{edits.context_calls} context call(s) now read core_loop.TrialContext values")
    if edits.loaders:
        out.append(f"{edits.loaders} determined.pytorch.DataLoader -> torch.utils.data.DataLoader")
    if edits.annotations:
        out.append(f"{edits.annotations} PyTorchTrialContext -> core_loop.TrialContext")
    if edits.todos:
        out.append(f"{edits.todos} TODO comment(s) added")
    return out

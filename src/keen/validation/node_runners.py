"""The project's Node test script, with a machine-readable report from the runners people use.

jest writes `--json`, vitest its JSON reporter, mocha its JSON reporter (to a file since mocha
9.1, else on stdout), `node --test` its TAP stream (given through `NODE_OPTIONS`, so it reaches
the `node --test` inside the script wherever its flags are). How the script is run is
`keen.validation.npmscript`'s call; any other runner is judged by the script's exit code.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from keen.proc import ProcessResult
from keen.validation.context import CheckContext
from keen.validation.envsetup import node_setup
from keen.validation.external import ToolUnavailable, find_node_tool, run_tool, tail
from keen.validation.npmscript import RunnerCall, find_runner, resolve_program
from keen.validation.suite import SuiteRun, missing_dependencies, missing_summary
from keen.validation.testreports import (
    CaseCounts,
    exception_line,
    find_mocha_json,
    missing_dependency,
    parse_jest_json,
    parse_mocha_json,
    parse_node_tap,
    read_json,
)

NPM_DEFAULT_TEST = "no test specified"
NPM_QUIET = {
    "CI": "1",
    "npm_config_update_notifier": "false",
    "npm_config_fund": "false",
    "npm_config_audit": "false",
}


def report_flags(runner: str, report: Path) -> list[str]:
    """The arguments that make `runner` write its report to `report`."""
    if runner == "jest":
        return ["--json", f"--outputFile={report}"]
    if runner == "vitest":
        return ["--run", "--reporter=json", f"--outputFile={report}"]
    if runner == "mocha":
        return ["--reporter", "json", "--reporter-option", f"output={report}"]
    # node --test: through NODE_OPTIONS, or right after `node` when started directly.
    return ["--test-reporter=tap", f"--test-reporter-destination={report}"]


async def run_npm_test(ctx: CheckContext) -> SuiteRun | None:
    """The project's `test` script, or None when it has none (npm's placeholder included)."""
    package = ctx.project.package_json or {}
    scripts = package.get("scripts") if isinstance(package.get("scripts"), dict) else {}
    scripts = scripts or {}
    script = str(scripts.get("test") or "")
    if not script or NPM_DEFAULT_TEST in script:
        return None
    npm = shutil.which("npm", path=ctx.env.get("PATH"))
    if npm is None:
        raise ToolUnavailable("npm is not installed: the test script was not run")
    call = find_runner(scripts)
    env = {**ctx.env, **NPM_QUIET}
    if call is None:
        result = await run_tool([npm, "test"], cwd=ctx.root, timeout=ctx.timeouts.tests, env=env)
        run = SuiteRun("npm test", duration_ms=result.duration_ms, ok=result.ok, counted=False)
        run.environment = {"command": "npm test"}
        return _judge(ctx, run, result, None)
    if call.runner != "node --test" and find_node_tool(ctx.root, call.runner) is None:
        run = SuiteRun(call.runner, setup=node_setup(ctx.root))
        run.environment = {"command": "npm test"}
        reason = f"{call.runner} is not installed (run npm install): the test script was not run"
        return run.blocked(reason)
    with tempfile.TemporaryDirectory(prefix="keen-npm-test-") as tmp:
        report = Path(tmp) / "report"
        argv, env = _command(ctx, npm, call, report, env)
        result = await run_tool(argv, cwd=ctx.root, timeout=ctx.timeouts.tests, env=env, writable=[Path(tmp)])
        counts = _read_report(call.runner, report, result)
    if counts is not None:
        _relative_files(counts, ctx.root)
    run = SuiteRun(call.runner, counts or CaseCounts(), result.duration_ms, ok=result.ok)
    run.counted = counts is not None
    run.environment = {"command": _shown(argv, npm, report)}
    if call.runner == "node --test" and call.last:
        run.environment["command"] += " (its TAP reporter given through NODE_OPTIONS)"
    return _judge(ctx, run, result, counts)


def _command(
    ctx: CheckContext, npm: str, call: RunnerCall, report: Path, env: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    flags = report_flags(call.runner, report)
    if call.runner == "node --test":
        if call.last:
            # NODE_OPTIONS reaches the `node --test` the script starts, wherever its flags are.
            options = [env.get("NODE_OPTIONS", ""), *(_node_option(flag) for flag in flags)]
            env = {**env, "NODE_OPTIONS": " ".join(filter(None, options))}
            return call.npm_argv(npm, []), env
        return [*resolve_program(ctx.root, call.words[:1]), *flags, *call.words[1:]], {**env, **call.env}
    if call.last:
        return call.npm_argv(npm, flags), env
    return [*resolve_program(ctx.root, call.words), *flags], {**env, **call.env}


def _node_option(flag: str) -> str:
    """A flag as NODE_OPTIONS takes it: it splits on spaces unless the value is double-quoted."""
    name, _, value = flag.partition("=")
    return f'{name}="{value}"' if " " in value else flag


def _read_report(runner: str, report: Path, result: ProcessResult) -> CaseCounts | None:
    if runner == "mocha":
        data = read_json(report) if report.is_file() else find_mocha_json(result.stdout)
        return parse_mocha_json(data) if data is not None else None
    parse: Callable[[Path], CaseCounts | None] = (
        parse_node_tap if runner == "node --test" else parse_jest_json
    )
    return parse(report)


def _relative_files(counts: CaseCounts, root: Path) -> None:
    """Failures name their files relative to the project, as pytest's do (runners give paths)."""
    for failure in counts.failures:
        if failure.file and Path(failure.file).is_absolute() and Path(failure.file).is_relative_to(root):
            relative = Path(failure.file).relative_to(root).as_posix()
            failure.name = failure.name.replace(failure.file, relative)
            failure.file = relative


def _judge(ctx: CheckContext, run: SuiteRun, result: ProcessResult, counts: CaseCounts | None) -> SuiteRun:
    output = result.stdout + result.stderr
    if result.timed_out:
        run.timed_out = True
        run.problem = f"npm test timed out after {ctx.timeouts.tests:g} s; its processes were killed"
        return run
    if counts is not None and (missing := missing_dependencies(counts)):
        run.setup = node_setup(ctx.root)
        return run.blocked(missing_summary(run.runner, missing, "node_modules"), missing[0].message)
    if counts is None and not result.ok and (package := missing_dependency(output)) is not None:
        # The runner stopped while loading the test files, before any report was written.
        run.setup = node_setup(ctx.root)
        reason = (
            f"{run.runner}: the test files could not be loaded: {package} is not installed in node_modules"
        )
        return run.blocked(reason, exception_line(output))
    if counts is not None and counts.total == 0 and result.ok:
        run.has_tests = False
    elif not result.ok and (counts is None or counts.failed + counts.errored == 0):
        run.problem = f"npm test exited with {result.exit_code}: {tail(output, 8)}"
    return run


def _shown(argv: list[str], npm: str, report: Path) -> str:
    """The command as a person would type it (no temporary paths)."""
    words = ["npm" if word == npm else word for word in argv]
    return " ".join(word.replace(str(report), "REPORT") for word in words)

"""The security category: ruff's bandit rules, hard-coded secrets and un-ignored .env files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from keen.validation import validate_project
from keen.validation.secrets import scan_file

ProjectFactory = Callable[..., Path]

# Built from pieces so keen's own sources hold no key-shaped literal.
FAKE_AWS_KEY = "AKIA" + "Q3EGRT7HJLMN2P4X"
FAKE_ANTHROPIC_KEY = "sk-" + "ant-api03-" + "Zq8Rk2LmNw4Vb7Yt1Xs9Pd3Fh6Jg"
PRIVATE_KEY_HEADER = "-----BEGIN " + "RSA PRIVATE KEY-----"


async def test_hard_coded_secret_is_critical_and_fails_overall(make_project: ProjectFactory) -> None:
    root = make_project(
        {"calc/cloud.py": f'"""Cloud access."""\n\nAWS_KEY = "{FAKE_AWS_KEY}"\n'}, clean=True, git=True
    )

    report = await validate_project(root, categories=["security"])

    security = report.categories["security"]
    assert security.status == "fail"
    assert report.overall == "fail"
    [finding] = [f for f in security.findings if f.rule == "aws-access-key-id"]
    assert finding.severity == "critical"
    assert (finding.file, finding.line) == ("calc/cloud.py", 3)
    assert FAKE_AWS_KEY not in finding.message  # reports never repeat the secret
    assert report.critical_findings() == [finding]


async def test_env_file_not_ignored_by_git_is_a_finding(make_project: ProjectFactory) -> None:
    root = make_project(
        {".env": "DEBUG=1\n", ".env.local": "X=1\n", ".env.example": "X=\n", ".gitignore": ".env.local\n"},
        clean=True,
        git=True,
    )

    report = await validate_project(root, categories=["security"])

    env_findings = [f for f in report.categories["security"].findings if f.rule == "env-file-not-ignored"]
    assert [(f.file, f.severity) for f in env_findings] == [(".env", "high")]
    assert report.categories["security"].status == "fail"
    assert report.overall == "warning"  # high, not critical


async def test_env_file_outside_git_always_counts(make_project: ProjectFactory) -> None:
    root = make_project({".env": "DEBUG=1\n", ".gitignore": ".env\n"}, clean=True)

    report = await validate_project(root, categories=["security"])

    assert [f.file for f in report.categories["security"].findings] == [".env"]


async def test_ignored_env_file_with_a_key_is_fine(make_project: ProjectFactory) -> None:
    root = make_project(
        {".env": f"ANTHROPIC_API_KEY={FAKE_ANTHROPIC_KEY}\n", ".gitignore": ".env\n"}, clean=True, git=True
    )

    report = await validate_project(root, categories=["security"])

    assert report.categories["security"].status == "pass"


async def test_bandit_rules_have_severities_and_asserts_in_tests_do_not_count(
    make_project: ProjectFactory,
) -> None:
    risky = """\
        \"\"\"Shell helpers.\"\"\"

        import subprocess


        def run(cmd):
            \"\"\"Run.\"\"\"
            return subprocess.call(cmd, shell=True)
    """
    root = make_project({"calc/shell.py": risky}, clean=True)

    report = await validate_project(root, categories=["security"])

    security = report.categories["security"]
    rules = {(f.rule, f.severity) for f in security.findings}
    assert ("S602", "high") in rules
    assert not any(f.rule == "S101" for f in security.findings)  # the fixture's tests use assert
    assert security.status == "fail"


def test_secret_patterns(tmp_path: Path) -> None:
    lines = {
        "aws.py": f'key = "{FAKE_AWS_KEY}"',
        "anthropic.py": f'client = Client(api_key="{FAKE_ANTHROPIC_KEY}")',
        "github.py": 'TOKEN = "ghp_' + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8" + '"',
        "id_rsa": PRIVATE_KEY_HEADER,
        "settings.py": 'password = "' + "s3cr3t-Hunter" + '"',
        "typed.py": 'db_password: str = "' + "Tr0ub4dor-3x" + '"',
    }
    for name, line in lines.items():
        (tmp_path / name).write_text(line + "\n")
        [finding] = scan_file(tmp_path, name)
        assert finding.severity == "critical", name


def test_placeholders_names_and_test_fixtures_are_not_secrets(tmp_path: Path) -> None:
    lines = {
        "a.py": 'password = "changeme-please"',
        "b.py": 'api_key = os.environ["ANTHROPIC_API_KEY"]',
        "c.py": 'API_KEY_VAR = "ANTHROPIC_API_KEY"',
        "d.py": 'key = "AKIAIOSFODNN7EXAMPLE"',
        "e.py": 'password = "' + "s3cr3t-Hunter" + '"  # pragma: allowlist secret',
        "f.py": "if password == user_input:",
    }
    for name, line in lines.items():
        (tmp_path / name).write_text(line + "\n")
        assert scan_file(tmp_path, name) == [], name
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_login.py").write_text('password = "' + "s3cr3t-Hunter" + '"\n')
    assert scan_file(tmp_path, "tests/test_login.py") == []

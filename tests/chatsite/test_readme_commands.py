"""Every `manage.py` command the README shows works exactly as written in a fresh
shell (no venv activated, no DJANGO_* set), as it would after `make run`; and
the README's claim about `check --deploy` is true."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from .shell import ROOT, free_port, fresh_env, readme_commands, run

MANAGE = r"manage\.py \w"
COVERED = {
    "price",
    "usage_rollup_rebuild",
    "fakeclaude",
    "collectstatic",
    "check",
    "seed_demo",
    "summarize",
}


def command(subcommand: str) -> str:
    (found,) = [c for c in readme_commands(MANAGE) if f"manage.py {subcommand}" in c]
    return found


@pytest.fixture(scope="module")
def migrated_var_dir(tmp_path_factory):
    """A checkout's var/ after `make run`: migrated, with its development key."""
    var_dir = tmp_path_factory.mktemp("var")
    result = run(".venv/bin/python manage.py migrate --noinput -v 0", fresh_env(var_dir))
    assert result.returncode == 0, result.stderr
    return var_dir


def test_the_readme_runs_manage_py_with_the_venvs_python():
    """A fresh shell's `python` may not be the venv's (or exist): every command says which."""
    commands = readme_commands(MANAGE)
    assert commands
    for line in commands:
        assert re.search(r"(^|\s)\.venv/bin/python manage\.py", line), line
    # A new command in the README needs a test here.
    assert {re.search(r"manage\.py (\w+)", c)[1] for c in commands} == COVERED


def test_price(tmp_path):
    """Even before the first `make run`: no database, no development key yet."""
    result = run(command("price"), fresh_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "cost_usd: 0.009900" in result.stdout


def test_usage_rollup_rebuild(migrated_var_dir):
    result = run(command("usage_rollup_rebuild"), fresh_env(migrated_var_dir))
    assert result.returncode == 0, result.stderr


def test_seed_demo_then_summarize_to_the_end(migrated_var_dir):
    """The demo data, then a job run to its end by the command itself (no worker)."""
    import json

    env = fresh_env(migrated_var_dir)
    seeded = run(command("seed_demo"), env, timeout=120)
    assert seeded.returncode == 0, seeded.stderr
    assert "Added 200 demo conversations to Acme." in seeded.stdout
    result = run(command("summarize"), env, timeout=180)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "ended"
    # The 200 and the conversation every seed shares with the team.
    assert report["counts"]["succeeded"] == 201 and len(report["conversations"]) == 201
    assert float(report["cost_usd"]) > 0


def test_collectstatic_for_production(tmp_path):
    env = fresh_env(tmp_path, DJANGO_ENV="production", DJANGO_SECRET_KEY="x" * 60)
    result = run(command("collectstatic"), env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "staticfiles" / "staticfiles.json").exists()


def test_fakeclaude_serves(tmp_path):
    """As written, but on a free port: 8765 may be taken on a shared machine."""
    port = free_port()
    line = command("fakeclaude").replace("--port 8765", f"--port {port}")
    process = subprocess.Popen(
        ["bash", "-c", f"exec {line}"],
        cwd=ROOT,
        env=fresh_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "fakeclaude did not open its port"
                time.sleep(0.1)
        # The Messages API's own error for a request without a body: it speaks HTTP.
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/messages", method="POST")
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=10)
        assert error.value.code in (400, 401, 422)
    finally:
        process.terminate()
        process.communicate(timeout=15)


def test_check_deploy_with_production_settings_warns_only_about_preload(tmp_path):
    result = run(command("check"), fresh_env(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.findall(r"\((\w+\.[WE]\d+)\)", output) == ["security.W021"]
    assert "1 issue (0 silenced)" in output


def test_check_deploy_is_clean_with_hsts_preload(tmp_path):
    result = run(command("check"), fresh_env(tmp_path, DJANGO_HSTS_PRELOAD="true"))
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr


def test_check_deploy_in_development_flags_the_generated_key(tmp_path):
    """A deployment that forgot DJANGO_ENV=production is told so by check --deploy."""
    result = run(".venv/bin/python manage.py check --deploy", fresh_env(tmp_path))
    output = result.stdout + result.stderr
    assert "security.W009" in output and "security.W008" in output

"""The ``frontline`` command: output, exit codes and one-sentence failures."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "golden"
DESIGN = GOLDEN / "decisions" / "design-example.yaml"


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_validate_reports_ok_with_a_summary() -> None:
    """A valid document prints one ok line naming what it holds, and exits 0."""
    result = run("validate", str(DESIGN))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"{DESIGN}: ok — ruleset retention-desk, 1 eligibility rule, 1 escalation rule, "
        "2 alerts, 1 table, 1 tree, 1 test"
    )


def test_validate_prints_located_errors_and_exits_1() -> None:
    """Errors print as file:line:col: message, one per line, and the exit code is 1."""
    bad = GOLDEN / "errors" / "expression-errors.yaml"
    result = run("validate", str(bad.relative_to(ROOT)))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 6
    assert lines[0] == (
        "tests/golden/errors/expression-errors.yaml:8:11: unknown field "
        "'customer.teir'; did you mean 'customer.tier'?"
    )


ANALYSED = """\
ruleset: credit
context:
  customer.tier: {type: string, enum: [gold, silver]}
  customer.tenure_months: integer
eligibility:
  - id: loyal
    when: customer.tenure_months > 36 and customer.tenure_months < 12
    offer: gift
tables:
  - id: credit
    hit: {hit}
    inputs: [customer.tier, customer.tenure_months]
    outputs: [days]
    rows:
      - ['"gold"', "< 24", 1]
      - ['"gold"', ">= 24", 2]
      - ['"gold"', "[12..30]", 3]
"""


def test_validate_prints_warnings_located_and_still_exits_0(tmp_path: Path) -> None:
    """What the analysis warns about prints as file:line:col: warning: message, before the
    ok line, which counts them; warnings alone do not fail validation."""
    path = tmp_path / "credit.yaml"
    path.write_text(ANALYSED.replace("{hit}", "first"))
    result = run("validate", str(path))
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines() == [
        f"{path}:7:11: warning: eligibility rule 'loyal' can never fire: "
        "customer.tenure_months > 36 and customer.tenure_months < 12 cannot both be true",
        f"{path}:17:9: warning: table 'credit' row 3 can never win: every input that matches "
        "it matches one of rows 1, 2 first",
        f"{path}:1:10: warning: the document has no tests: write some under tests:, or deploy "
        "it with allow_untested if that is meant",
        f"{path}: ok — ruleset credit, 1 eligibility rule, 0 escalation rules, 0 alerts, "
        "1 table, 0 trees, 0 tests, 3 warnings",
    ]


def test_validate_warns_of_tests_that_guard_nothing(tmp_path: Path) -> None:
    """A test that checks nothing is a warning at validate, located at its expect."""
    path = tmp_path / "empty.yaml"
    text = DESIGN.read_text()
    assert "  - name: platinum caller at risk escalates" in text
    path.write_text(
        text + "  - name: says nothing\n    context: {}\n    expect: {}\n", encoding="utf-8"
    )
    result = run("validate", str(path))
    assert result.returncode == 0, result.stdout
    (warning,) = [line for line in result.stdout.splitlines() if "warning:" in line]
    assert warning.endswith(
        "warning: test 'says nothing' checks nothing (expect: {}): name what it expects"
    )
    assert run("validate", str(DESIGN)).stdout.count("warning:") == 0


def test_validate_refuses_overlapping_rows_of_a_unique_table(tmp_path: Path) -> None:
    """Rows of a unique table that one input matches together are an error: exit 1."""
    path = tmp_path / "credit.yaml"
    path.write_text(ANALYSED.replace("{hit}", "unique"))
    result = run("validate", str(path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{path}:17:9: table 'credit' rows 1 and 3 overlap: customer.tier = \"gold\", "
        "customer.tenure_months = 12 matches both"
    ]


def test_test_command_ends_with_the_counts(tmp_path: Path) -> None:
    """`frontline test` lists failures with their differences and ends 'N passed, M failed'."""
    failing = tmp_path / "failing.yaml"
    failing.write_text(DESIGN.read_text().replace("escalation: vip-churn", "escalation: null"))
    result = run("test", str(DESIGN), str(failing))
    assert result.returncode == 1
    assert "FAIL platinum caller at risk escalates" in result.stdout
    assert "escalation: expected None, got 'vip-churn'" in result.stdout
    assert result.stdout.splitlines()[-1] == "1 passed, 1 failed"
    assert run("test", str(DESIGN)).stdout.splitlines()[-1] == "1 passed, 0 failed"


def test_eval_prints_the_decision_json() -> None:
    """`frontline eval` prints the decision as JSON, with a trace when asked."""
    context = {"customer": {"tier": "platinum", "churn_score": 0.9}, "history": {"contacts_7d": 2}}
    result = run(
        "eval",
        str(DESIGN),
        "--context",
        json.dumps(context),
        "--trace",
        "--now",
        "2026-11-22T10:00:00Z",
        "--answers",
        '{"charge_age_days": 3}',
    )
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["evaluated_at"] == "2026-11-22T10:00:00.000Z"
    assert [e["rule"] for e in decision["eligible"]] == ["fee-waiver"]
    assert decision["next_step"]["outcome"] == "refund"
    assert decision["trace"]["rules"]


def test_eval_reads_context_from_a_file(tmp_path: Path) -> None:
    """--context @file reads the JSON from a file."""
    context = tmp_path / "context.json"
    context.write_text('{"customer": {"tier": "gold"}, "history": {"contacts_7d": 4}}')
    result = run("eval", str(DESIGN), "--context", f"@{context}")
    assert [e["rule"] for e in json.loads(result.stdout)["eligible"]] == ["fee-waiver"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ("validate", "nope.yaml"),
            "frontline: cannot read nope.yaml: no such file",
            id="missing-file",
        ),
        pytest.param(
            ("eval", str(DESIGN), "--context", "{bad"),
            "frontline: --context is not valid JSON",
            id="bad-json",
        ),
        pytest.param(
            ("eval", str(DESIGN), "--context", "[1]"),
            "frontline: --context must be a JSON object",
            id="not-an-object",
        ),
        pytest.param(
            ("eval", str(DESIGN), "--now", "tuesday"),
            "frontline: invalid now 'tuesday'",
            id="bad-now",
        ),
        pytest.param(
            ("eval", str(DESIGN), "--tree", "nope"),
            "frontline: ruleset 'retention-desk' has no tree 'nope'",
            id="bad-tree",
        ),
        pytest.param(
            ("serve", "--host", "0.0.0.0", "--data-dir", "/nonexistent/never"),
            "frontline: refusing to listen on 0.0.0.0 with generated keys",
            id="serve-open-without-keys",
        ),
        pytest.param(
            ("serve", "--port", "70000"),
            "frontline: --port must be between 1 and 65535",
            id="serve-bad-port",
        ),
    ],
)
def test_failures_are_one_plain_sentence(args: tuple[str, ...], message: str) -> None:
    """Every failure prints one line starting with 'frontline:' and exits non-zero."""
    result = run(*args)
    assert result.returncode == 1
    assert result.stderr.startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


DURABLE = {
    "approval": {
        "big": {"all": [{"m": {"$and": [{"subject": "approve"}, {"$gt": {"amount": 1000}}]}}]},
        "small": {"all": [{"m": {"$lte": {"amount": 1000}}}]},
        "seq": {"all": [{"first": {"t": "a"}}, {"second": {"t": "b"}}]},
    }
}


def test_import_durable_writes_a_document_that_compiles(tmp_path: Path) -> None:
    """import-durable prints a Frontline document and names what it could not convert."""
    source = tmp_path / "approval.json"
    source.write_text(json.dumps(DURABLE))
    out = tmp_path / "approval.yaml"
    result = run("import-durable", str(source), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "not converted: rule 'seq': sequences of several messages" in result.stderr
    from engine import compile_ruleset

    compiled = compile_ruleset(out.read_text())
    assert compiled.evaluate({"m": {"subject": "approve", "amount": 5000}}).eligible_rules == [
        "big"
    ]
    assert compiled.evaluate({"m": {"amount": 10}}).eligible_rules == ["small"]
    assert run("validate", str(out)).returncode == 0


DMN_FIXTURES = ROOT / "tests" / "unit" / "engine" / "importers" / "dmn"
LOAN_DMN = DMN_FIXTURES / "loan-approval.dmn"


def test_import_dmn_prints_a_document_that_compiles_and_writes_it_with_o(tmp_path: Path) -> None:
    """import-dmn prints the converted document; with -o it writes it; both validate."""
    result = run("import-dmn", str(LOAN_DMN))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ruleset: loan-approval\n")
    assert "hit: unique" in result.stdout
    out = tmp_path / "loan.yaml"
    written = run("import-dmn", str(LOAN_DMN), "-o", str(out))
    assert written.returncode == 0, written.stderr
    assert written.stdout == ""
    assert out.read_text() == result.stdout
    assert run("validate", str(out)).returncode == 0
    from engine import compile_ruleset

    decision = compile_ruleset(out.read_text()).evaluate(
        {"input": {"applicant": {"age": 19}, "requested_amount": 100}}
    )
    assert decision.tables["loan-approval"] == {"status": "Declined", "interest_rate": None}


def test_eval_dmn_prints_each_decision_by_its_name_in_the_model(tmp_path: Path) -> None:
    """eval-dmn takes the input data by their names (JSON or @file) and prints each decision."""
    values = {
        "Applicant": {"Age": 30, "Monthly Income": 4000, "Employment": "EMPLOYED"},
        "Requested Amount": 20000,
        "Application Date": "2025-03-01",
        "Existing Customer": False,
    }
    result = run("eval-dmn", str(LOAN_DMN), "--input", json.dumps(values))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert json.loads(result.stdout) == {
        "Risk Category": "Low",
        "Loan Approval": {"Status": "Approved", "Interest Rate": 0.035},
        "Processing Fee": 175,
    }
    source = tmp_path / "input.json"
    source.write_text(json.dumps({**values, "Existing Customer": True, "Extra": 1}))
    from_file = run("eval-dmn", str(LOAN_DMN), "--input", f"@{source}")
    assert from_file.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout)["Processing Fee"] == 75
    assert from_file.stderr == (
        "frontline: --input names 'Extra', which is no input data of the model; ignored\n"
    )


def test_eval_dmn_lists_multiple_hits_and_reports_broken_hit_policies() -> None:
    """Lists for multiple hits, null for no match, and a broken UNIQUE or ANY on stderr."""
    model = DMN_FIXTURES / "hit-policies.dmn"
    result = run("eval-dmn", str(model), "--input", '{"Score": 150}')
    assert result.returncode == 0, result.stderr
    decisions = json.loads(result.stdout)
    assert decisions["Grade (unique)"] is None
    assert decisions["Grades (output order)"] == ["distinction", "merit", "pass"]
    assert decisions["Points (count)"] == 3
    assert result.stderr.splitlines() == [
        "frontline: decision 'Grade (unique)': hit policy unique, but rows 1, 2, 3 all match",
        "frontline: decision 'Grade (any)': hit policy any, but rows 1, 3 all match and their "
        "outputs differ",
    ]
    none = json.loads(run("eval-dmn", str(model)).stdout)
    assert none["Grade (first)"] is None
    assert none["Grades (collect)"] == []


def test_eval_dmn_answers_literal_expressions_and_computed_output_entries() -> None:
    """Literal expressions (arithmetic, **, concatenation, if ... then ... else) and output
    entries that compute are evaluated; what is null in FEEL is null."""
    values = {
        "Full Name": "John Doe",
        "Monthly Salary": 10000,
        "Employment Status": "EMPLOYED",
        "Loan": {"principal": 30000, "rate": 0.0475, "termMonths": 60},
    }
    result = run("eval-dmn", str(DMN_FIXTURES / "salary.dmn"), "--input", json.dumps(values))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    decisions = json.loads(result.stdout)
    assert decisions.pop("Payment") == pytest.approx(562.707359373292)
    assert decisions == {
        "Greeting Message": "Hello John Doe",
        "Yearly Salary": 120000,
        "Employment Status Statement": "You are EMPLOYED",
        "Salary Band": "high",
        "Bonus": 12000.0,
        "Nothing": None,
    }
    imported = run("import-dmn", str(DMN_FIXTURES / "salary.dmn"))
    assert imported.returncode == 0, imported.stderr
    assert "  - ['-', '{(12 * input.monthly_salary)}']" in imported.stdout


def test_dmn_commands_refuse_in_one_sentence(tmp_path: Path) -> None:
    """What cannot be converted, a missing file and bad --input each fail with one sentence."""
    context = tmp_path / "context.dmn"
    context.write_text(
        '<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" name="m">'
        '<decision name="Risk"><context/></decision></definitions>'
    )
    for command in ("import-dmn", "eval-dmn"):
        result = run(command, str(context))
        assert result.returncode == 1
        assert result.stdout == ""
        assert result.stderr == (
            f"frontline: {context}: decision 'Risk' uses a context; only decision tables and "
            "literal expressions are supported\n"
        )
    missing = run("import-dmn", str(tmp_path / "nope.dmn"))
    assert missing.returncode == 1
    assert missing.stderr == f"frontline: cannot read {tmp_path / 'nope.dmn'}: no such file\n"
    bad = run("eval-dmn", str(LOAN_DMN), "--input", "[1]")
    assert bad.returncode == 1
    assert bad.stderr == "frontline: --input must be a JSON object\n"
    doctype = tmp_path / "doctype.dmn"
    doctype.write_text('<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><definitions/>')
    result = run("eval-dmn", str(doctype))
    assert result.returncode == 1
    assert "declares a DOCTYPE or entities, which are refused" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_names_a_bad_setting_in_one_sentence(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
        env={**os.environ, "FRONTLINE_MAX_CONCURRENCY": "lots"},
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "frontline: FRONTLINE_MAX_CONCURRENCY must be a whole number, not 'lots'"
    )


def test_serve_on_a_busy_port_says_one_sentence_and_prints_nothing_else(tmp_path: Path) -> None:
    """The port is checked before anything is made or printed: no keys, no page list."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != "FRONTLINE_API_KEYS"}
        command = ["serve", "--data-dir", str(tmp_path / "d"), "--port", str(port)]
        result = subprocess.run(
            [sys.executable, "-m", "server.cli", *command],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
            env=env,
        )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"frontline: cannot listen on 127.0.0.1:{port}: Address already in use; another "
        "server may be using the port, or choose another with --port\n"
    )
    assert not (tmp_path / "d" / "keys.json").exists()


def test_test_command_reports_coverage_when_asked(tmp_path: Path) -> None:
    """`frontline test --coverage` says how much of each document its tests reached and
    lists what they did not."""
    result = run("test", "--coverage", str(DESIGN))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    (summary,) = [line for line in lines if line.startswith("  coverage: ")]
    reached, total = (int(n) for n in summary.split()[1:4:2])
    assert 0 < reached < total
    missed = [line.strip() for line in lines if line.startswith("    not reached: ")]
    assert len(missed) >= 1
    assert all(
        m.split(": ", 1)[1].startswith(("eligibility", "escalation", "alerts", "table", "tree"))
        for m in missed
    )
    assert "coverage" not in run("test", str(DESIGN)).stdout

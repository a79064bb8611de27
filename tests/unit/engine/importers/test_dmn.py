"""The DMN importer: hit policies, S-FEEL unary tests and input expressions, types and allowed
values, decisions reading decisions, default outputs, names, and what it refuses."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import pytest

from engine import compile_ruleset
from engine.importers.dmn import (
    MAX_MODEL_BYTES,
    DmnConversion,
    DmnDecision,
    DmnImportError,
    DmnInput,
    convert_dmn,
    dump_document,
)
from engine.source import load_document

FIXTURES = Path(__file__).parent / "dmn"
DMN15 = "https://www.omg.org/spec/DMN/20230324/MODEL/"


def model(
    body: str,
    inputs: dict[str, str | None] | None = None,
    *,
    namespace: str = DMN15,
    extra: str = "",
) -> str:
    """A model with the given input data (name → typeRef, None for none) and decisions."""
    declared = "".join(
        f'<inputData id="i{k}" name="{name}"><variable name="{name}"'
        + (f' typeRef="{type_ref}"' if type_ref else "")
        + "/></inputData>"
        for k, (name, type_ref) in enumerate((inputs or {}).items())
    )
    return (
        f'<definitions xmlns="{namespace}" id="m" name="Test Model" namespace="https://t">'
        f"{extra}{declared}{body}</definitions>"
    )


def table(
    name: str,
    inputs: list[str],
    rules: list[tuple[list[str], list[str]]],
    *,
    outputs: list[str] | None = None,
    hit: str = "UNIQUE",
    attributes: str = "",
    output_details: dict[str, str] | None = None,
) -> str:
    """A decision with a decision table: input expressions, (input entries, output entries)."""
    output_names = outputs or [""]
    details = output_details or {}
    input_xml = "".join(
        f'<input id="{name}-in{k}"><inputExpression><text>{text}</text></inputExpression></input>'
        for k, text in enumerate(inputs)
    )
    output_xml = "".join(
        f'<output id="{name}-out{k}"' + (f' name="{o}"' if o else "") + f">{details.get(o, '')}"
        "</output>"
        for k, o in enumerate(output_names)
    )
    rule_xml = "".join(
        "<rule>"
        + "".join(f"<inputEntry><text>{e}</text></inputEntry>" for e in entries)
        + "".join(f"<outputEntry><text>{e}</text></outputEntry>" for e in results)
        + "</rule>"
        for entries, results in rules
    )
    return (
        f'<decision id="{name.replace(" ", "_")}" name="{name}">'
        f'<decisionTable hitPolicy="{hit}"{attributes}>{input_xml}{output_xml}{rule_xml}'
        "</decisionTable></decision>"
    )


def evaluate(conversion: DmnConversion, values: dict[str, Any]) -> dict[str, Any]:
    compiled = compile_ruleset(conversion.document, strict=False)
    return conversion.results(compiled.evaluate(conversion.context(values)).tables)


def refused(text: str) -> str:
    with pytest.raises(DmnImportError) as caught:
        convert_dmn(text)
    return str(caught.value)


# -- a whole model ----------------------------------------------------------------------------


LOAN = (FIXTURES / "loan-approval.dmn").read_text()
APPLICANT = {"Age": 30, "Monthly Income": 4000, "Employment": "EMPLOYED"}


def test_the_loan_model_converts_to_a_document_that_compiles() -> None:
    conversion = convert_dmn(LOAN)
    document = conversion.document
    compile_ruleset(document)
    assert document["ruleset"] == "loan-approval"
    assert document["context"]["input.applicant.employment"] == {
        "type": "string",
        "enum": ["EMPLOYED", "SELF-EMPLOYED", "UNEMPLOYED"],
        "description": "DMN input data 'Applicant.Employment'",
    }
    assert document["context"]["input.application_date"]["type"] == "string"
    assert [t["id"] for t in document["tables"]] == [
        "risk-category",
        "loan-approval",
        "processing-fee-matches",
        "processing-fee",
    ]
    risk, approval, _, fee = document["tables"]
    assert risk["inputs"] == ["input.applicant.age", "input.applicant.employment"]
    assert risk["rows"][2] == ["[21..65)", '"EMPLOYED", "SELF-EMPLOYED"', "Low"]
    assert approval["inputs"] == [
        "tables.risk-category.risk_category",
        "(input.requested_amount / (input.applicant.monthly_income * 12))",
    ]
    assert approval["outputs"] == ["status", "interest_rate"]
    assert approval["rows"][-1] == ["-", "-", None, 0.09]  # FIRST: the default, last
    assert fee["inputs"][0] == "tables.loan-approval.status"
    assert fee["inputs"][-1] == "tables.processing-fee-matches.rows"
    assert fee["rows"][-1] == ["-", "-", "-", 0, 0]
    assert conversion.decisions == (
        DmnDecision("Risk Category", "risk-category", (("Risk Category", "risk_category"),), False),
        DmnDecision(
            "Loan Approval",
            "loan-approval",
            (("Status", "status"), ("Interest Rate", "interest_rate")),
            False,
        ),
        DmnDecision(
            "Processing Fee", "processing-fee", (("Processing Fee", "processing_fee"),), False
        ),
    )
    assert conversion.inputs[0] == DmnInput(
        "Applicant",
        "structure",
        None,
        (
            DmnInput("Age", "number", "input.applicant.age"),
            DmnInput("Monthly Income", "number", "input.applicant.monthly_income"),
            DmnInput("Employment", "string", "input.applicant.employment"),
        ),
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(
            {
                "Applicant": APPLICANT,
                "Requested Amount": 20000,
                "Application Date": "2025-03-01",
                "Existing Customer": False,
            },
            {
                "Risk Category": "Low",
                "Loan Approval": {"Status": "Approved", "Interest Rate": 0.035},
                "Processing Fee": 175,
            },
            id="approved-after-the-fee-change",
        ),
        pytest.param(
            {
                "Applicant": APPLICANT,
                "Requested Amount": 40000,
                "Application Date": "2024-12-31",
                "Existing Customer": False,
            },
            {
                "Risk Category": "Low",
                "Loan Approval": {"Status": "Referred", "Interest Rate": 0.05},
                "Processing Fee": 150,
            },
            id="referred-before-the-fee-change",
        ),
        pytest.param(
            {
                "Applicant": {**APPLICANT, "Age": 70},
                "Requested Amount": 100000,
                "Application Date": "2025-01-01",
                "Existing Customer": True,
            },
            {
                "Risk Category": "Medium",
                "Loan Approval": {"Status": None, "Interest Rate": 0.09},
                "Processing Fee": 0,
            },
            id="no-rule-the-defaults",
        ),
        pytest.param(
            {"Applicant": {**APPLICANT, "Age": 19}, "Requested Amount": 100},
            {
                "Risk Category": "High",
                "Loan Approval": {"Status": "Declined", "Interest Rate": None},
                "Processing Fee": 0,
            },
            id="declined-fee-waived",
        ),
        pytest.param(
            {"Applicant": {**APPLICANT, "Employment": "RETIRED"}},
            {
                "Risk Category": None,  # outside the allowed values: unknown
                "Loan Approval": {"Status": None, "Interest Rate": 0.09},
                "Processing Fee": 0,
            },
            id="not-an-allowed-value",
        ),
    ],
)
def test_the_loan_model_decides_as_dmn_does(
    values: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert evaluate(convert_dmn(LOAN), values) == expected


def test_context_places_values_by_their_model_names_and_drops_bad_dates() -> None:
    conversion = convert_dmn(LOAN)
    assert conversion.context(
        {"Applicant": {"Age": 40, "Other": 1}, "Application Date": "2025-02-30", "X": 1}
    ) == {"input": {"applicant": {"age": 40}}}
    assert conversion.context({"Application Date": "2025-02-28"}) == {
        "input": {"application_date": "2025-02-28"}
    }
    assert conversion.context({"Applicant": "not an object"}) == {}
    assert conversion.unknown_inputs({"Applicant": {}, "X": 1, "Risk Category": "Low"}) == [
        "X",
        "Risk Category",
    ]


def test_the_document_renders_as_yaml_that_reads_back_the_same() -> None:
    conversion = convert_dmn(LOAN)
    text = dump_document(conversion.document)
    assert load_document(text)[0] == conversion.document
    assert "  - ['[21..65)', '\"EMPLOYED\", \"SELF-EMPLOYED\"', Low]" in text
    compile_ruleset(text)
    tricky = {"ruleset": "t", "context": {}, "tables": [], "x": ["1e3", "0o17", "on", "-", "null"]}
    assert load_document(dump_document(tricky))[0] == tricky


# -- hit policies -----------------------------------------------------------------------------


HIT_POLICIES = (FIXTURES / "hit-policies.dmn").read_text()


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        pytest.param(
            95,
            {
                "Grade (unique)": None,  # three rules match
                "Grade (any)": "pass",  # two agreeing rules
                "Grade (first)": "pass",
                "Grade (priority)": "distinction",
                "Grades (collect)": ["pass", "merit", "distinction"],
                "Points (sum)": 60,
                "Points (min)": 10,
                "Points (max)": 30,
                "Points (count)": 3,
                "Grades (rule order)": ["pass", "merit", "distinction"],
                "Grades (output order)": ["distinction", "merit", "pass"],
            },
            id="several-rules",
        ),
        pytest.param(
            40,
            {
                "Grade (unique)": "fail",
                "Grade (any)": "fail",
                "Grade (first)": "fail",
                "Grade (priority)": "fail",
                "Grades (collect)": ["fail"],
                "Points (sum)": 0,
                "Points (min)": 0,
                "Points (max)": 0,
                "Points (count)": 1,
                "Grades (rule order)": ["fail"],
                "Grades (output order)": ["fail"],
            },
            id="one-rule",
        ),
        pytest.param(
            150,
            {
                "Grade (unique)": None,
                "Grade (any)": None,  # pass and bonus disagree
                "Grade (first)": "pass",
                "Grade (priority)": "distinction",
                "Grades (collect)": ["pass", "merit", "distinction"],
                "Points (sum)": 60,
                "Points (min)": 10,
                "Points (max)": 30,
                "Points (count)": 3,
                "Grades (rule order)": ["pass", "merit", "distinction"],
                "Grades (output order)": ["distinction", "merit", "pass"],
            },
            id="any-disagrees",
        ),
        pytest.param(
            None,
            {
                "Grade (unique)": None,
                "Grade (any)": None,
                "Grade (first)": None,
                "Grade (priority)": None,
                "Grades (collect)": [],
                "Points (sum)": None,
                "Points (min)": None,
                "Points (max)": None,
                "Points (count)": 0,
                "Grades (rule order)": [],
                "Grades (output order)": [],
            },
            id="no-rule",
        ),
    ],
)
def test_each_hit_policy_and_aggregation(score: int | None, expected: dict[str, Any]) -> None:
    assert evaluate(convert_dmn(HIT_POLICIES), {"Score": score}) == expected


def test_hit_policies_map_to_frontline_policies() -> None:
    tables = convert_dmn(HIT_POLICIES).document["tables"]
    assert [(t["hit"], t.get("aggregate")) for t in tables] == [
        ("unique", None),
        ("any", None),
        ("first", None),
        ("priority", None),
        ("collect", None),
        ("collect", "sum"),
        ("collect", "min"),
        ("collect", "max"),
        ("collect", "count"),
        ("rule_order", None),
        ("output_order", None),
    ]
    assert tables[3]["outputs"] == [
        {"name": "grade", "values": ["distinction", "merit", "pass", "bonus", "fail"]}
    ]


def test_the_hit_policy_defaults_to_unique_and_may_be_written_with_underscores() -> None:
    body = table("D", ["X"], [(["-"], ['"a"'])], hit="RULE_ORDER")
    assert convert_dmn(model(body, {"X": "number"})).document["tables"][0]["hit"] == "rule_order"
    body = table("D", ["X"], [(["-"], ['"a"'])]).replace(' hitPolicy="UNIQUE"', "")
    assert convert_dmn(model(body, {"X": "number"})).document["tables"][0]["hit"] == "unique"


def test_multi_output_collect_gives_a_list_of_objects() -> None:
    body = table(
        "Offers",
        ["Tier"],
        [(['"gold"'], ['"upgrade"', "10"]), (["-"], ['"survey"', "1"])],
        outputs=["Offer", "Weight"],
        hit="COLLECT",
    )
    conversion = convert_dmn(model(body, {"Tier": "string"}))
    assert evaluate(conversion, {"Tier": "gold"}) == {
        "Offers": [{"Offer": "upgrade", "Weight": 10}, {"Offer": "survey", "Weight": 1}]
    }
    assert evaluate(conversion, {"Tier": "bronze"}) == {
        "Offers": [{"Offer": "survey", "Weight": 1}]
    }


@pytest.mark.parametrize(
    ("hit", "attributes", "value", "expected"),
    [
        ("UNIQUE", "", 5, "small"),
        ("UNIQUE", "", 50, "none"),
        ("ANY", "", 50, "none"),
        ("FIRST", "", 50, "none"),
        ("PRIORITY", "", 50, "none"),
        ("PRIORITY", "", 5, "small"),
        ("COLLECT", "", 50, ["none"]),
        ("COLLECT", "", 5, ["small"]),
        ("RULE ORDER", "", 50, ["none"]),
        ("OUTPUT ORDER", "", 5, ["small"]),
    ],
)
def test_default_outputs_apply_when_no_rule_matches(
    hit: str, attributes: str, value: int, expected: Any
) -> None:
    details = {
        "Size": '<outputValues><text>"small", "none"</text></outputValues>'
        '<defaultOutputEntry><text>"none"</text></defaultOutputEntry>'
    }
    body = table(
        "Size",
        ["X"],
        [(["&lt; 10"], ['"small"'])],
        outputs=["Size"],
        hit=hit,
        attributes=attributes,
        output_details=details,
    )
    assert evaluate(convert_dmn(model(body, {"X": "number"})), {"X": value}) == {"Size": expected}


def test_a_default_of_an_aggregated_collect_joins_the_aggregate() -> None:
    details = {"Days": "<defaultOutputEntry><text>0</text></defaultOutputEntry>"}
    body = table(
        "Days",
        ["Age"],
        [(["&lt; 18, &gt;= 60"], ["5"]), (["&gt;= 60"], ["3"])],
        outputs=["Days"],
        hit="COLLECT",
        attributes=' aggregation="MAX"',
        output_details=details,
    )
    conversion = convert_dmn(model(body, {"Age": "number"}))
    assert evaluate(conversion, {"Age": 30}) == {"Days": 0}
    assert evaluate(conversion, {"Age": 65}) == {"Days": 5}


# -- S-FEEL input entries ---------------------------------------------------------------------


def one_test(entry: str, type_ref: str, value: Any) -> bool:
    """Whether a rule with ``entry`` on an input of ``type_ref`` matches ``value``."""
    body = table("Hit", ["V"], [([entry], ["true"])], hit="FIRST")
    conversion = convert_dmn(model(body, {"V": type_ref}))
    return bool(evaluate(conversion, {"V": value})["Hit"])


@pytest.mark.parametrize(
    ("entry", "type_ref", "value", "matches"),
    [
        ("-", "number", None, True),
        ("", "number", 3, True),
        ("5", "number", 5, True),
        ("5", "number", 5.0, True),
        ("5.50", "number", 5.5, True),
        (".5", "number", 0.5, True),
        ("-2", "number", -2, True),
        ("&lt; -2", "number", -3, True),
        ("&lt;5", "number", 5, False),
        ("&lt;= 5", "number", 5, True),
        ("&gt; 5", "number", 5, False),
        ("&gt;=5", "number", 5, True),
        ("= 5", "number", 5, True),
        ("!= 5", "number", 5, False),
        ("!= 5", "number", 6, True),
        ("[1..10]", "number", 1, True),
        ("[1..10]", "number", 10, True),
        ("(1..10]", "number", 1, False),
        ("]1..10]", "number", 1, False),
        ("[1..10)", "number", 10, False),
        ("[1..10[", "number", 10, False),
        ("(1..10)", "number", 5.5, True),
        ("[10..1]", "number", 5, False),
        ("1, 3, [5..7]", "number", 6, True),
        ("1, 3, [5..7]", "number", 4, False),
        ("not(1, 3)", "number", 3, False),
        ("not(1, 3)", "number", 2, True),
        ("not( [1..3] )", "number", 4, True),
        ('"gold"', "string", "gold", True),
        ('"gold", "silver"', "string", "silver", True),
        ('not("gold")', "string", "silver", True),
        ('"say \\"hi\\""', "string", 'say "hi"', True),
        ('"tab\\there"', "string", "tab\there", True),
        ('"\\u00e9t\\u00e9"', "string", "été", True),
        ('"a, b"', "string", "a, b", True),
        ('&lt; "m"', "string", "k", True),
        ('["a".."c"]', "string", "b", True),
        ("true", "boolean", True, True),
        ("true", "boolean", False, False),
        ("false", "boolean", False, True),
        ('date("2024-02-29")', "date", "2024-02-29", True),
        ('&gt;= date("2024-01-01")', "date", "2024-06-30", True),
        ('&gt;= date("2024-01-01")', "date", "2023-12-31", False),
        ('[date("2024-01-01")..date("2024-12-31")]', "date", "2024-07-01", True),
        ('@"2024-01-01"', "date", "2024-01-01", True),
        ('date("2024-01-01")', "date", "not a date", False),
        ('"gold"', "string", None, False),
        ('not("gold")', "string", None, False),  # DMN would match a null here
    ],
)
def test_unary_tests(entry: str, type_ref: str, value: Any, matches: bool) -> None:
    assert one_test(entry, type_ref, value) is matches


def test_unary_tests_become_frontline_cells() -> None:
    entries = [
        "-",
        "&gt;= 18",
        '"Medium","Low"',
        "]1..2[",
        "!= 3",
        "true",
        "7",
        '"7"',
        "not(&lt; 0)",
        '= "x"',
    ]
    types = ["number", "number", "string", "number", "number", "boolean", "number", "string"]
    types += ["number", "string"]
    inputs = {f"V{k}": type_ref for k, type_ref in enumerate(types)}
    body = table("D", list(inputs), [(entries, ['"out"'])])
    tables = convert_dmn(model(body, inputs)).document["tables"]
    assert tables[0]["rows"][0][:-1] == [
        "-",
        ">= 18",
        '"Medium", "Low"',
        "(1..2)",
        "not(3)",
        True,
        7,
        '"7"',
        "not(< 0)",
        '"x"',
    ]


# -- input expressions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "converted"),
    [
        ("Monthly Income", "input.monthly_income"),
        ("Monthly  Income", "input.monthly_income"),
        ("Monthly Income * 12 - Debt", "((input.monthly_income * 12) - input.debt)"),
        ("-Debt + 1", "((-input.debt) + 1)"),
        ("(Monthly Income - Debt) / 2", "((input.monthly_income - input.debt) / 2)"),
        ("Debt &gt; 100 and not(Student)", "((input.debt > 100) and (not input.student))"),
        ("Debt = 0 or Student", "((input.debt == 0) or input.student)"),
        ("abs(Debt - 5)", "abs((input.debt - 5))"),
        ("max(Debt, Monthly Income)", "max(input.debt, input.monthly_income)"),
        ('Name + "!"', '(input.name + "!")'),
    ],
)
def test_input_expressions(expression: str, converted: str) -> None:
    body = table("D", [expression], [(["-"], ['"x"'])])
    inputs = {"Monthly Income": "number", "Debt": "number", "Student": "boolean", "Name": "string"}
    document = convert_dmn(model(body, inputs)).document
    assert document["tables"][0]["inputs"] == [converted]
    compile_ruleset(document)


def test_names_with_symbols_and_a_longer_name_containing_a_shorter_one() -> None:
    inputs = {"Age": "number", "Age of car": "number", "Approved/Declined": "string"}
    body = table(
        "D", ["Age of car - Age", "Approved/Declined"], [(["&gt; 0", '"Approved"'], ['"old"'])]
    )
    conversion = convert_dmn(model(body, inputs))
    assert conversion.document["tables"][0]["inputs"] == [
        "(input.age_of_car - input.age)",
        "input.approved_declined",
    ]
    assert evaluate(conversion, {"Age": 30, "Age of car": 31, "Approved/Declined": "Approved"}) == {
        "D": "old"
    }


def test_a_decision_reads_an_output_of_a_multi_output_decision_and_chains_on() -> None:
    first = table(
        "Pricing",
        ["Tier"],
        [(['"gold"'], ['"gold rate"', "0.1"]), (["-"], ['"list"', "0"])],
        outputs=["Plan Name", "Discount"],
        hit="FIRST",
    )
    second = table("Price", ["Pricing.Discount"], [(["&gt; 0"], ["90"]), (["0"], ["100"])])
    third = table(
        "Label", ["Price"], [(["&lt; 100"], ['"deal"']), (["-"], ['"regular"'])], hit="FIRST"
    )
    conversion = convert_dmn(model(first + second + third, {"Tier": "string"}))
    assert conversion.document["tables"][1]["inputs"] == ["tables.pricing.discount"]
    assert conversion.document["tables"][2]["inputs"] == ["tables.price.price"]
    assert evaluate(conversion, {"Tier": "gold"}) == {
        "Pricing": {"Plan Name": "gold rate", "Discount": 0.1},
        "Price": 90,
        "Label": "deal",
    }
    assert evaluate(conversion, {"Tier": "silver"})["Label"] == "regular"


# -- types and allowed values -----------------------------------------------------------------


def test_an_untyped_input_takes_the_type_its_tables_show() -> None:
    body = table("D", ["Level"], [(["&gt; 3"], ['"high"']), (["-"], ['"low"'])], hit="FIRST")
    conversion = convert_dmn(model(body, {"Level": None, "Unused": None}))
    assert conversion.document["context"] == {
        "input.level": {"type": "number", "description": "DMN input data 'Level'"}
    }
    assert [i.name for i in conversion.inputs] == ["Level"]
    assert evaluate(conversion, {"Level": 4}) == {"D": "high"}


def test_input_values_become_the_enum_of_an_input_without_allowed_values() -> None:
    body = table("D", ["Color"], [(['"red"'], ["1"]), (["-"], ["2"])], hit="FIRST").replace(
        "</inputExpression>",
        '</inputExpression><inputValues><text>"red", "blue"</text></inputValues>',
    )
    conversion = convert_dmn(model(body, {"Color": "string"}))
    assert conversion.document["context"]["input.color"]["enum"] == ["red", "blue"]
    assert evaluate(conversion, {"Color": "green"}) == {"D": 2}  # unknown: only '-' matches


def test_allowed_values_of_an_item_definition_and_the_output_values_priority() -> None:
    extra = (
        '<itemDefinition name="tLevel"><typeRef>string</typeRef>'
        '<allowedValues><text>"low", "high"</text></allowedValues></itemDefinition>'
    )
    body = table(
        "Level",
        ["Score"],
        [(["&gt; 5"], ['"high"']), (["-"], ['"low"'])],
        outputs=["Level"],
        hit="PRIORITY",
    ).replace(
        '<output id="Level-out0" name="Level">',
        '<output id="Level-out0" name="Level" typeRef="tLevel">',
    )
    conversion = convert_dmn(model(body, {"Score": "number"}, extra=extra))
    assert conversion.document["tables"][0]["outputs"] == [
        {"name": "level", "values": ["low", "high"]}
    ]
    assert evaluate(conversion, {"Score": 9}) == {"Level": "low"}


@pytest.mark.parametrize(
    ("entry", "value"),
    [
        ("null", None),
        ("", None),
        ("-1.5", -1.5),
        ("2.0", 2),
        ('"say \\"hi\\""', 'say "hi"'),
        ('"\\"quoted\\""', '"quoted"'),
        ('"1e3"', "1e3"),
        ("false", False),
        ('date("2024-03-01")', "2024-03-01"),
    ],
)
def test_output_entries_are_literals(entry: str, value: Any) -> None:
    body = table("D", ["X"], [(["-"], [entry]), (["&lt; 0"], ["0"])], hit="FIRST")
    if isinstance(value, bool | str):
        body = body.replace("<text>0</text></outputEntry>", f"<text>{entry}</text></outputEntry>")
    assert evaluate(convert_dmn(model(body, {"X": "number"})), {"X": 1}) == {"D": value}


@pytest.mark.parametrize(
    "namespace",
    [
        "http://www.omg.org/spec/DMN/20151101/dmn.xsd",
        "http://www.omg.org/spec/DMN/20180521/MODEL/",
        "https://www.omg.org/spec/DMN/20191111/MODEL/",
        "https://www.omg.org/spec/DMN/20211108/MODEL/",
        DMN15,
    ],
)
def test_dmn_1_1_to_1_5_models_are_read(namespace: str) -> None:
    body = table("D", ["X"], [(["&gt; 1"], ['"big"']), (["&lt;= 1"], ['"small"'])])
    conversion = convert_dmn(model(body, {"X": "feel:number"}, namespace=namespace))
    assert conversion.document["context"]["input.x"]["type"] == "number"
    assert evaluate(conversion, {"X": 2}) == {"D": "big"}


@pytest.mark.parametrize("type_ref", ["integer", "long", "double", "xsd:decimal"])
def test_modelers_names_for_numbers_are_numbers(type_ref: str) -> None:
    body = table("D", ["X"], [(["&gt; 1"], ['"big"'])])
    document = convert_dmn(model(body, {"X": type_ref})).document
    assert document["context"]["input.x"]["type"] == "number"


def test_ids_and_fields_from_awkward_names() -> None:
    inputs = {"2nd Score": "number", "class": "number", "Prénom": "string", "prenom": "string"}
    body = table("1 Result", ["2nd Score + class", "Prénom", "prenom"], [(["-", "-", "-"], ["1"])])
    body += table("1 result!", ["1 Result"], [(["-"], ["2"])])
    conversion = convert_dmn(model(body, inputs))
    document = conversion.document
    assert list(document["context"]) == [
        "input.x_2nd_score",
        "input.class_",
        "input.prenom",
        "input.prenom_2",
    ]
    assert [t["id"] for t in document["tables"]] == ["decision-1-result", "decision-1-result-2"]
    assert document["tables"][1]["outputs"] == ["x_1_result"]
    assert document["ruleset"] == "test-model"
    assert evaluate(conversion, {"2nd Score": 1, "class": 2}) == {"1 Result": 1, "1 result!": 2}


# -- literal expressions and output entries that compute --------------------------------------


SALARY = (FIXTURES / "salary.dmn").read_text()
JOHN = {
    "Full Name": "John Doe",
    "Monthly Salary": 10000,
    "Employment Status": "EMPLOYED",
    "Loan": {"principal": 600000, "rate": 0.0375, "termMonths": 360},
}


def literal(name: str, text: str, type_ref: str | None = None, attributes: str = "") -> str:
    """A decision whose logic is a literal expression."""
    typed = f' typeRef="{type_ref}"' if type_ref else ""
    return (
        f'<decision id="{name.replace(" ", "_")}" name="{name}"><variable name="{name}"{typed}/>'
        f"<literalExpression{attributes}><text>{text}</text></literalExpression></decision>"
    )


def test_literal_expressions_become_tables_of_one_computed_output() -> None:
    conversion = convert_dmn(SALARY)
    by_id = {t["id"]: t for t in conversion.document["tables"]}
    assert by_id["greeting-message"] == {
        "id": "greeting-message",
        "description": "DMN decision 'Greeting Message' (a literal expression)",
        "hit": "first",
        "inputs": ["true"],
        "outputs": ["greeting_message"],
        "rows": [["-", '{("Hello " + input.full_name)}']],
    }
    assert by_id["payment"]["rows"] == [
        [
            "-",
            "{(((input.loan.principal * input.loan.rate) / 12) / "
            "(1 - ((1 + (input.loan.rate / 12)) ** (-input.loan.term_months))))}",
        ]
    ]
    # if ... then ... else if ...: a row per branch, each reading its condition; first wins.
    assert by_id["salary-band"]["hit"] == "first"
    assert by_id["salary-band"]["inputs"] == [
        "(tables.yearly-salary.yearly_salary >= 100000)",
        "(tables.yearly-salary.yearly_salary >= 30000)",
    ]
    assert by_id["salary-band"]["rows"] == [
        [True, "-", "high"],
        ["-", True, "middle"],
        ["-", "-", "low"],
    ]
    # Output entries that compute are computed cells; literal ones stay literal.
    assert [row[-1] for row in by_id["bonus"]["rows"]] == [
        "{(tables.yearly-salary.yearly_salary * 0.1)}",
        "{((tables.yearly-salary.yearly_salary * 0.05) + 100)}",
        500,
    ]
    # Null whatever the inputs: a row that never matches types the output (a number).
    assert by_id["nothing"]["description"] == (
        "DMN decision 'Nothing' (a literal expression that is always null)"
    )
    assert by_id["nothing"]["rows"] == [["not(-)", 0]]
    assert conversion.decisions[0] == DmnDecision(
        "Greeting Message", "greeting-message", (("Greeting Message", "greeting_message"),), False
    )
    text = dump_document(conversion.document)
    assert load_document(text)[0] == conversion.document
    compile_ruleset(text)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(
            JOHN,
            {
                "Greeting Message": "Hello John Doe",
                "Yearly Salary": 120000,
                "Employment Status Statement": "You are EMPLOYED",
                "Payment": pytest.approx(2778.69354943277),
                "Salary Band": "high",
                "Bonus": 12000.0,
                "Nothing": None,
            },
            id="every-input",
        ),
        pytest.param(
            {
                "Monthly Salary": 3000,
                "Loan": {"principal": 30000, "rate": 0.0475, "termMonths": 60},
            },
            {
                "Greeting Message": None,
                "Yearly Salary": 36000,
                "Employment Status Statement": None,
                "Payment": pytest.approx(562.707359373292),
                "Salary Band": "middle",
                "Bonus": 1900.0,
                "Nothing": None,
            },
            id="null-inputs-give-null",
        ),
        pytest.param(
            {"Employment Status": "RETIRED"},
            {
                "Greeting Message": None,
                "Yearly Salary": None,
                "Employment Status Statement": None,  # not an allowed value: unknown
                "Payment": None,
                "Salary Band": "low",  # a null condition takes the else branch, as in FEEL
                "Bonus": 500,
                "Nothing": None,
            },
            id="else-when-the-condition-is-null",
        ),
    ],
)
def test_the_salary_model_decides_as_dmn_does(
    values: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert evaluate(convert_dmn(SALARY), values) == expected


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        pytest.param('"Hello " + Name', {"Name": "Ann"}, "Hello Ann", id="concatenation"),
        pytest.param("12 * Salary", {"Salary": 10000}, 120000, id="names-with-arithmetic"),
        pytest.param("10**5", {}, 100000, id="power"),
        pytest.param("10**-5", {}, 0.00001, id="power-negative"),
        pytest.param("5+2**5+3", {}, 40, id="power-binds-tighter"),
        pytest.param("1.2*10**3", {}, 1200, id="power-then-times"),
        pytest.param("-10--5", {}, -5, id="minus-minus"),
        pytest.param("(10+20)/0", {}, None, id="division-by-zero-is-null"),
        pytest.param("10 + null", {}, None, id="null-arithmetic"),
        pytest.param("-(null) * Salary", {"Salary": 1}, None, id="null-negated"),
        pytest.param("abs(null)", {}, None, id="function-of-null"),
        pytest.param(".872", {}, 0.872, id="number-constant"),
        pytest.param('"横綱"', {}, "横綱", id="string-constant"),
        pytest.param("false", {}, False, id="boolean-constant"),
        pytest.param("A and B", {"A": None, "B": False}, False, id="null-and-false"),
        pytest.param("A and B", {"A": None, "B": True}, None, id="null-and-true"),
        pytest.param("A or B", {"A": None, "B": True}, True, id="null-or-true"),
        pytest.param("not(A)", {"A": None}, None, id="not-null"),
        pytest.param("not(A)", {"A": False}, True, id="not"),
        pytest.param("if A then 1 else 2", {"A": True}, 1, id="if-then"),
        pytest.param("if A then 1 else 2", {"A": None}, 2, id="if-null-else"),
        pytest.param(
            "if Salary > 5 then Salary * 2 else null", {"Salary": 3}, None, id="else-null"
        ),
        pytest.param('upper case(Name) + "!"', {"Name": "Ann"}, "ANN!", id="upper-case"),
        pytest.param("string length(Name)", {"Name": "Ann"}, 3, id="string-length"),
        pytest.param('"{" + Name + "}"', {"Name": "Ann"}, "{Ann}", id="braces-in-strings"),
        pytest.param('"{not a part}"', {}, "{not a part}", id="braces-in-a-constant"),
    ],
)
def test_literal_expressions(text: str, values: dict[str, Any], expected: Any) -> None:
    inputs = {"Name": "string", "Salary": "number", "A": "boolean", "B": "boolean"}
    conversion = convert_dmn(model(literal("D", text, "number"), inputs))
    assert evaluate(conversion, values) == {"D": expected}


def test_output_entries_that_compute_are_computed_cells() -> None:
    body = table(
        "D",
        ["X"],
        [
            (["&gt; 100"], ["X * 2", '"big: " + Name']),
            (["&gt; 10"], ["-X", '"{" + Name + "}"']),
            (["-"], ["X + null", '"{as written}"']),
        ],
        outputs=["Value", "Label"],
        hit="FIRST",
    )
    conversion = convert_dmn(model(body, {"X": "number", "Name": "string"}))
    assert conversion.document["tables"][0]["rows"] == [
        ["> 100", "{(input.x * 2)}", '{("big: " + input.name)}'],
        ["> 10", "{(-input.x)}", '{(("\\u007b" + input.name) + "\\u007d")}'],
        ["-", None, '"{as written}"'],
    ]
    decide = functools.partial(evaluate, conversion)
    assert decide({"X": 200, "Name": "a"}) == {"D": {"Value": 400, "Label": "big: a"}}
    assert decide({"X": 20, "Name": "a"}) == {"D": {"Value": -20, "Label": "{a}"}}
    assert decide({"X": 1}) == {"D": {"Value": None, "Label": "{as written}"}}
    assert decide({"X": 200}) == {"D": {"Value": 400, "Label": None}}


def test_computed_output_entries_under_collect_sum() -> None:
    body = table(
        "D",
        ["X"],
        [(["&gt; 0"], ["X * 2"]), (["-"], ["1"])],
        hit="COLLECT",
        attributes=' aggregation="SUM"',
    )
    assert evaluate(convert_dmn(model(body, {"X": "number"})), {"X": 5}) == {"D": 11}


def test_a_table_input_reads_a_literal_expression_decision() -> None:
    body = literal("Double", "X * 2") + table(
        "Size", ["Double"], [(["&gt;= 10"], ['"big"']), (["&lt; 10"], ['"small"'])]
    )
    conversion = convert_dmn(model(body, {"X": "number"}))
    assert evaluate(conversion, {"X": 6}) == {"Double": 12, "Size": "big"}


@pytest.mark.parametrize(
    ("body", "sentence"),
    [
        (
            literal("N", "null"),
            "decision 'N' is null whatever its inputs, and gives no type (typeRef of string, "
            "number, boolean or date) for its output",
        ),
        (
            literal("N", "1", attributes=' expressionLanguage="https://www.javascript.com"'),
            "decision 'N' has a literal expression in 'https://www.javascript.com'; only FEEL "
            "is supported",
        ),
        (literal("N", " "), "decision 'N' has an empty literal expression"),
        (
            literal("N", "if null then 1 else 2"),
            "decision 'N': 'if null then 1 else 2' is not a FEEL expression Frontline can "
            "convert (a condition that is null)",
        ),
        (
            literal("N", "if X &gt; 1 then 1"),
            "decision 'N': 'if X > 1 then 1' is not a FEEL expression Frontline can convert "
            "(expected 'else' at 'the end')",
        ),
        (
            literal("N", "1 + (if X &gt; 1 then 1 else 2)"),
            "decision 'N': '1 + (if X > 1 then 1 else 2)' is not a FEEL expression Frontline "
            "can convert ('if' inside an expression; Frontline converts if ... then ... else "
            "only as a whole literal expression)",
        ),
        (
            literal("N", "for x in [1, 2] return x"),
            "decision 'N': 'for x in [1, 2] return x' is not a FEEL expression Frontline can "
            "convert ('for' is not supported)",
        ),
        (
            literal("N", 'X + "a"'),
            "decision 'N': cannot apply + to number and string (input.x + 'a'); expected two "
            "numbers or two strings",
        ),
        (
            table(
                "P",
                ["X"],
                [(["-"], ["X * 2"])],
                hit="PRIORITY",
                output_details={"": "<outputValues><text>1, 2</text></outputValues>"},
            ),
            "decision 'P' rule 1: hit: priority ranks rows by the declared values of output "
            "'P', so its cells must be literal values: a computed cell cannot be ranked "
            "(compute it in an output without values, or in a table that reads this one)",
        ),
        (
            table(
                "F",
                ["X"],
                [(["&gt; 1"], ["1"])],
                output_details={"": "<defaultOutputEntry><text>X * 2</text></defaultOutputEntry>"},
            ),
            "decision 'F' output 'F' default: 'X * 2' is an expression; a default output is a "
            "literal value",
        ),
    ],
)
def test_what_a_literal_expression_or_computed_entry_cannot_do_is_refused(
    body: str, sentence: str
) -> None:
    assert refused(model(body, {"X": "number"})) == sentence


# -- what is refused --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "sentence"),
    [
        (
            '<decision name="C"><context/></decision>',
            "decision 'C' uses a context; only decision tables and literal expressions are "
            "supported",
        ),
        (
            '<decision name="I"><invocation/></decision>',
            "decision 'I' uses an invocation; only decision tables and literal expressions are "
            "supported",
        ),
        (
            '<decision name="R"><relation/></decision>',
            "decision 'R' uses a relation; only decision tables and literal expressions are "
            "supported",
        ),
        (
            '<decision name="E"><variable name="E"/></decision>',
            "decision 'E' has no decision logic",
        ),
        (
            '<decision name="K"><knowledgeRequirement><requiredKnowledge href="#b"/>'
            "</knowledgeRequirement><decisionTable/></decision>",
            "decision 'K' invokes a business knowledge model; only decision tables and literal "
            "expressions are supported",
        ),
        (
            '<businessKnowledgeModel name="Rates"/>',
            "business knowledge model 'Rates' is not supported; only decisions with decision "
            "tables or literal expressions are converted",
        ),
        (
            '<decisionService name="All"/>',
            "decision service 'All' is not supported; only decisions with decision tables or "
            "literal expressions are converted",
        ),
        (
            '<import namespace="https://other" name="o"/>',
            "the model imports 'https://other'; imports are not supported, the model must "
            "stand alone",
        ),
        ("", "the model has no decisions"),
    ],
)
def test_unsupported_elements_are_refused_in_one_sentence(body: str, sentence: str) -> None:
    assert refused(model(body)) == sentence


@pytest.mark.parametrize(
    ("inputs", "rules", "sentence"),
    [
        (
            ["X"],
            [(["&lt; Y"], ['"a"'])],
            "decision 'D' rule 1 input 'X': '< Y' is not an S-FEEL unary test Frontline can "
            "convert (expected a literal at 'Y'; unary tests may compare with literals only)",
        ),
        (
            ["X"],
            [(["null"], ['"a"'])],
            "decision 'D' rule 1 input 'X': 'null' is not an S-FEEL unary test Frontline can "
            "convert (a null test cannot be expressed: an unknown input matches only '-')",
        ),
        (
            ["X"],
            [(["? &gt; 1"], ['"a"'])],
            "decision 'D' rule 1 input 'X': '? > 1' is not an S-FEEL unary test Frontline can "
            "convert (expected a literal at '? > 1'; unary tests may compare with literals only)",
        ),
        (
            ["X"],
            [(["-"], ["floor(X * 2)"])],
            "decision 'D' rule 1 output 'D': 'floor(X * 2)' is not a FEEL expression Frontline "
            "can convert (the function floor() is not supported)",
        ),
        (
            ["X"],
            [(["-"], ["if X &gt; 1 then 1 else 2"])],
            "decision 'D' rule 1 output 'D': 'if X > 1 then 1 else 2' is not a FEEL expression "
            "Frontline can convert ('if' inside an expression; Frontline converts if ... then "
            "... else only as a whole literal expression)",
        ),
        (
            ["X"],
            [(["-"], ["X = null"])],
            "decision 'D' rule 1 output 'D': 'X = null' is not a FEEL expression Frontline can "
            "convert (null in a comparison: Frontline has no null to compare or to combine "
            "with 'and', 'or' and 'not')",
        ),
        (
            ["X"],
            [(["-"], ['X + "a"'])],
            "decision 'D' rule 1: cannot apply + to number and string (input.x + 'a'); "
            "expected two numbers or two strings",
        ),
        (
            ["X"],
            [(['date and time("2024-01-01T10:00:00")'], ['"a"'])],
            "decision 'D' rule 1 input 'X': 'date and time(\"2024-01-01T10:00:00\")' is not an "
            "S-FEEL unary test Frontline can convert (date and time() values are not "
            "supported; only dates among the temporal types)",
        ),
        (
            ["floor(X)"],
            [(["-"], ['"a"'])],
            "decision 'D' input 'floor(X)': 'floor(X)' is not an S-FEEL expression Frontline "
            "can convert (the function floor() is not supported)",
        ),
        (
            ["X between 1 and 2"],
            [(["-"], ['"a"'])],
            "decision 'D' input 'X between 1 and 2': 'X between 1 and 2' is not an S-FEEL "
            "expression Frontline can convert ('between' is not supported)",
        ),
        (
            ["Z"],
            [(["-"], ['"a"'])],
            "decision 'D' input 'Z': 'Z' is not an S-FEEL expression Frontline can convert "
            "('Z' is neither an input data nor a decision of the model)",
        ),
        (
            ["X"],
            [(["1", "2"], ['"a"'])],
            "decision 'D' rule 1 has 2 input and 1 output entries; the table has 1 inputs and "
            "1 outputs",
        ),
        (["X"], [], "decision 'D' has a decision table with no rules"),
        (
            ["X"],
            [(['"a"'], ['"a"'])],
            "decision 'D' rule 1: cannot compare this input (number) with \"a\" (string)",
        ),
        (
            ["X"],
            [(["1"], ['"a"']), (["2"], ["2"])],
            "decision 'D': output 'D' mixes value types; each output column must hold one type",
        ),
    ],
)
def test_what_frontline_cannot_express_is_refused_naming_the_cell(
    inputs: list[str], rules: list[tuple[list[str], list[str]]], sentence: str
) -> None:
    assert refused(model(table("D", inputs, rules), {"X": "number"})) == sentence


@pytest.mark.parametrize(
    ("hit", "attributes", "outputs", "sentence"),
    [
        ("SOMETIMES", "", None, "decision 'D' has the unknown hit policy 'SOMETIMES'"),
        (
            "FIRST",
            ' aggregation="SUM"',
            None,
            "decision 'D' has an aggregation (SUM) but hit policy FIRST; aggregations go with "
            "COLLECT",
        ),
        ("COLLECT", ' aggregation="AVG"', None, "decision 'D' has the unknown aggregation 'AVG'"),
        (
            "COLLECT",
            ' aggregation="SUM"',
            ["A", "B"],
            "decision 'D' aggregates (SUM) several outputs; DMN aggregates a single output only",
        ),
        (
            "PRIORITY",
            "",
            None,
            "decision 'D' has hit policy PRIORITY but no output lists its output values "
            "(outputValues) in priority order",
        ),
        (
            "OUTPUT ORDER",
            "",
            None,
            "decision 'D' has hit policy OUTPUT ORDER but no output lists its output values "
            "(outputValues) in priority order",
        ),
    ],
)
def test_hit_policies_and_aggregations_that_do_not_fit_are_refused(
    hit: str, attributes: str, outputs: list[str] | None, sentence: str
) -> None:
    results = ["1"] * len(outputs or [""])
    body = table("D", ["X"], [(["-"], results)], hit=hit, attributes=attributes, outputs=outputs)
    assert refused(model(body, {"X": "number"})) == sentence


def test_a_decision_giving_a_list_cannot_be_a_table_input() -> None:
    collected = table("A", ["X"], [(["-"], ['"a"'])], hit="COLLECT")
    reader = table("B", ["A"], [(['"a"'], ['"b"'])])
    assert refused(model(collected + reader, {"X": "number"})) == (
        "decision 'B' input 'A': 'A' is not an S-FEEL expression Frontline can convert "
        "(decision 'A' gives a list (every matching rule), and a table input is one value)"
    )


def test_decisions_reading_each_other_in_a_cycle_are_refused() -> None:
    first = table("C1", ["C2"], [(["-"], ['"a"'])])
    second = table("C2", ["C1"], [(["-"], ['"a"'])])
    assert refused(model(first + second)) == (
        "decision 'C1': tables read each other in a cycle: c1 → c2 → c1"
    )


def test_types_frontline_cannot_hold_are_refused_where_a_table_reads_them() -> None:
    body = table("D", ["When"], [(["-"], ['"a"'])])
    assert refused(model(body, {"When": "dateTime"})) == (
        "input data 'When' is of type 'date and time', which Frontline cannot hold; supported "
        "are string, number, boolean, date and structures of them"
    )
    # Unread, it is left out.
    unread = convert_dmn(model(table("D", ["X"], [(["-"], ["1"])]), {"X": "number", "W": "time"}))
    assert list(unread.document["context"]) == ["input.x"]
    assert refused(model(table("D", ["U"], [(["-"], ["1"])]), {"U": None})) == (
        "input data 'U' has no type (typeRef), and the tables that read it show nothing; give "
        "it a typeRef"
    )


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        (
            '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><definitions/>',
            "the model declares a DOCTYPE or entities, which are refused (DMN needs neither)",
        ),
        (
            '<!DOCTYPE d SYSTEM "file:///etc/passwd"><definitions>&xxe;</definitions>',
            "the model declares a DOCTYPE or entities, which are refused (DMN needs neither)",
        ),
        ("<definitions", "the model is not well-formed XML: unclosed token: line 1, column 0"),
        (
            '<definitions xmlns="https://example.com"/>',
            "expected a DMN model: a <definitions> element in a DMN namespace, not <definitions>",
        ),
        (b"\xff<definitions/>", "the model is not valid UTF-8 (byte 0)"),
        ("<a>\x00</a>", "the model contains a NUL character"),
    ],
)
def test_xml_that_is_not_a_dmn_model_or_is_dangerous_is_refused(
    text: str | bytes, sentence: str
) -> None:
    assert refused(text) == sentence  # type: ignore[arg-type]


def test_an_entity_expansion_bomb_is_refused_before_parsing() -> None:
    entities = "".join(
        f'<!ENTITY e{k} "{f"&e{k - 1};" * 10 if k else "x" * 10}">' for k in range(10)
    )
    bomb = f'<?xml version="1.0"?><!DOCTYPE d [{entities}]><definitions>&e9;</definitions>'
    started = time.perf_counter()
    with pytest.raises(DmnImportError, match="DOCTYPE"):
        convert_dmn(bomb)
    assert time.perf_counter() - started < 0.5


def test_a_model_over_the_size_limit_is_refused() -> None:
    text = model("<!--" + "x" * MAX_MODEL_BYTES + "-->")
    assert refused(text) == f"the model is larger than {MAX_MODEL_BYTES} bytes"
    assert refused(text.encode()) == f"the model is larger than {MAX_MODEL_BYTES} bytes"

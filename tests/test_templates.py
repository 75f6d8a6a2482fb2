"""Templates as the delivery worker and `cadence program validate` use them: parts per
channel, escaping, the context's variables, errors that name the file and line, limits,
compile-once caching, and the templates shipped in config/templates."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from markupsafe import Markup

from config import DEFAULT_CONFIG_DIR
from core.program import load_program, template_problem
from core.settings import TemplateSettings
from core.templates import (
    RenderedMessage,
    TemplateRenderError,
    Templates,
    check_templates,
    message_context,
    missing_template_files,
    sample_context,
)
from core.templates.context import Recommendations
from tests.test_cli import Cli

SHIPPED = DEFAULT_CONFIG_DIR / "templates"


def _files(folder: Path, **files: str) -> Path:
    """Write ``name_part="source"`` as ``name.part.j2`` (``welcome_txt`` -> welcome.txt.j2)."""
    folder.mkdir(parents=True, exist_ok=True)
    for key, source in files.items():
        name, part = key.rsplit("_", 1)
        (folder / f"{name}.{part}.j2").write_text(source, encoding="utf-8")
    return folder


def _context(**customer: Any) -> dict[str, Any]:
    clicked: list[str] = []

    def link(url: str) -> str:
        clicked.append(url)
        return f"https://t.example/c/{len(clicked)}"

    context = message_context(
        customer={"name": "Ana Sousa", "email": "ana@example.com", "attributes": {}, **customer},
        stage="new",
        scores={"rfm_score": 345, "clv_12m": None},
        campaign="welcome-series",
        variant="welcome",
        brand="Acme",
        unsubscribe_url="https://t.example/u/TOKEN",
        open_url="https://t.example/o/TOKEN",
        link=link,
        recommendations=[{"product_id": f"p{n}", "score": 10.0 - n} for n in range(1, 6)],
    )
    context["clicked"] = clicked  # for the tests to look at; templates never see it
    return context


def test_each_channel_renders_its_parts(tmp_path: Path) -> None:
    folder = _files(
        tmp_path,
        hello_subject="Hi {{ customer.first_name }}",
        hello_txt="Text for {{ customer.name }}",
        hello_html="<p>HTML for {{ customer.name }}</p>",
        short_txt="SMS for {{ customer.first_name }}",
    )
    templates = Templates(folder, TemplateSettings())
    context = _context()

    email = templates.render("hello", "email", context)
    assert email == RenderedMessage("Hi Ana", "Text for Ana Sousa", "<p>HTML for Ana Sousa</p>")
    assert templates.render("hello", "file", context) == email
    assert templates.render("hello", "in_app", context) == email
    assert templates.render("hello", "sms", context) == RenderedMessage(
        None, "Text for Ana Sousa", None
    )
    # Subject and HTML are optional where a channel may have them, required where it must.
    assert templates.render("short", "webhook", context) == RenderedMessage(
        None, "SMS for Ana", None
    )
    with pytest.raises(TemplateRenderError, match=r"template short\.subject\.j2: no such file"):
        templates.render("short", "email", context)
    with pytest.raises(ValueError, match="unknown channel 'fax'"):
        templates.render("hello", "fax", context)


def test_required_files_per_channel_agree_with_the_program_check(tmp_path: Path) -> None:
    folder = _files(tmp_path, only_txt="text")
    assert missing_template_files("only", "sms", folder) == []
    assert missing_template_files("only", "in_app", folder) == []
    assert missing_template_files("only", "email", folder) == ["only.subject.j2"]
    assert missing_template_files("only", "file", folder) == ["only.subject.j2"]
    assert missing_template_files("none", "sms", folder) == ["none.txt.j2"]
    assert template_problem("only", "file", folder) == (
        f"template `only` lacks only.subject.j2 in {folder}"
    )
    assert template_problem("only", "webhook", folder) is None


def test_html_is_escaped_and_text_and_subject_are_not(tmp_path: Path) -> None:
    folder = _files(
        tmp_path,
        x_subject="{{ customer.name }}",
        x_txt="{{ customer.name }}",
        x_html='<a href="{{ link("https://shop.example/?a=1&b=2") }}">{{ customer.name }}</a>',
    )
    name = '<b>Tom & "Jerry"</b>'
    rendered = Templates(folder, TemplateSettings()).render("x", "email", _context(name=name))
    assert rendered.subject == name
    assert rendered.text == name
    assert rendered.html == (
        '<a href="https://t.example/c/1">&lt;b&gt;Tom &amp; &#34;Jerry&#34;&lt;/b&gt;</a>'
    )


def test_the_context_offers_every_documented_variable(tmp_path: Path) -> None:
    source = (
        "{{ customer.first_name }}|{{ customer.email }}|{{ customer.attributes.tier }}|"
        "{{ stage }}|{{ scores.rfm_score }}|[{{ scores.clv_12m }}]|{{ campaign }}|"
        "{{ variant }}|{{ brand }}|{{ unsubscribe_url }}|{{ open_url }}|"
        "{{ link('https://shop.example/sale') }}|"
        "{% for p in recommendations(2) %}{{ p.product_id }}={{ p.score }};{% endfor %}|"
        "{{ recommendations(0)|length }}|{{ recommendations(99)|length }}"
    )
    folder = _files(tmp_path, vars_txt=source)
    context = _context(attributes={"tier": "gold"})
    text = Templates(folder, TemplateSettings()).render("vars", "sms", context).text
    assert text == (
        "Ana|ana@example.com|gold|new|345|[]|welcome-series|welcome|Acme|"
        "https://t.example/u/TOKEN|https://t.example/o/TOKEN|https://t.example/c/1|"
        "p1=9.0;p2=8.0;|0|5"
    )
    assert context["clicked"] == ["https://shop.example/sale"]


def test_first_name_is_derived_unless_given() -> None:
    def first_name(**customer: Any) -> Any:
        return _context(**customer)["customer"]["first_name"]

    assert first_name(name="  Jo  Ann Smith ") == "Jo"
    assert first_name(name=None) is None
    assert first_name(name="Jo Smith", first_name="Joanna") == "Joanna"


def test_the_context_is_plain_data_only() -> None:
    class Row:  # stands for an ORM object: what templates must never get
        name = "x"

    with pytest.raises(TypeError, match=r"plain data .* not Row"):
        _context(attributes={"row": Row()})
    # Text that claims to be safe HTML is plain text again: escaped like any other.
    customer = _context(name=Markup("<i>x</i>"))["customer"]
    assert type(customer["name"]) is str


def test_link_and_recommendations_refuse_bad_arguments(tmp_path: Path) -> None:
    folder = _files(
        tmp_path,
        js_txt="{{ link('javascript:alert(1)') }}",
        rel_txt="{{ link('/relative') }}",
        many_txt="{{ recommendations('3') }}",
    )
    templates = Templates(folder, TemplateSettings())
    with pytest.raises(TemplateRenderError, match=r"link\(\) takes an absolute http\(s\) address"):
        templates.render("js", "sms", _context())
    with pytest.raises(TemplateRenderError, match="absolute http"):
        templates.render("rel", "sms", _context())
    with pytest.raises(TemplateRenderError, match="recommendations"):
        templates.render("many", "sms", _context())


def test_a_broken_template_fails_its_message_with_file_line_and_reason(tmp_path: Path) -> None:
    folder = _files(
        tmp_path,
        typo_txt="Hello\n\n{{ customer.nmae }}\n",
        fine_txt="Hello {{ customer.first_name }}",
        syntax_txt="line one\n{% if %}\n",
    )
    templates = Templates(folder, TemplateSettings())
    with pytest.raises(TemplateRenderError) as undefined:
        templates.render("typo", "sms", _context())
    assert str(undefined.value) == (
        "template typo.txt.j2 line 3: undefined variable: 'dict object' has no attribute 'nmae'"
    )
    assert (undefined.value.template, undefined.value.line) == ("typo.txt.j2", 3)
    # The next message, with another template, is not affected.
    assert templates.render("fine", "sms", _context()).text == "Hello Ana"
    with pytest.raises(TemplateRenderError, match=r"syntax\.txt\.j2 line 2: syntax error"):
        templates.render("syntax", "sms", _context())
    # The same failure again, from the kept result: the file is not read again.
    (folder / "syntax.txt.j2").unlink()
    with pytest.raises(TemplateRenderError, match=r"syntax\.txt\.j2 line 2: syntax error"):
        templates.render("syntax", "sms", _context())


def test_limits_on_file_size_and_output(tmp_path: Path) -> None:
    folder = _files(
        tmp_path,
        big_txt="x" * 2_000,
        loud_txt="{% for i in range(100) %}{{ '0123456789' * 10 }}{% endfor %}",
        wide_txt="{% for i in range(10) %}{{ 'é' * 99 }}{% endfor %}",
    )
    settings = TemplateSettings(max_template_bytes=1_000, max_output_bytes=5_000)
    templates = Templates(folder, settings)
    with pytest.raises(TemplateRenderError, match=r"big\.txt\.j2: too large: 2,000 bytes"):
        templates.render("big", "sms", _context())
    with pytest.raises(TemplateRenderError, match=r"loud\.txt\.j2: too large: the output"):
        templates.render("loud", "sms", _context())
    # 990 characters but 1,980 bytes in UTF-8: bytes are what count.
    small = Templates(folder, TemplateSettings(max_output_bytes=1_500))
    with pytest.raises(TemplateRenderError, match="max_output_bytes"):
        small.render("wide", "sms", _context())


def test_each_file_is_compiled_once_and_rendering_is_cheap(tmp_path: Path) -> None:
    templates = Templates(SHIPPED, TemplateSettings())
    context = sample_context("Acme")
    first = templates.render("welcome", "email", context)
    renders = 500
    started = time.perf_counter()
    for _ in range(renders):
        assert templates.render("welcome", "email", context) == first
    per_render = (time.perf_counter() - started) / renders
    # A compile costs milliseconds; a render tens of microseconds. The bound is loose
    # for a busy machine, and still far below one compile per render.
    assert per_render < 0.001, f"{per_render * 1e6:.0f} µs per render"
    # Kept compiled: the files are not read again.
    copy = _files(tmp_path, hello_txt="Hello {{ brand }}")
    kept = Templates(copy, TemplateSettings())
    assert kept.render("hello", "sms", context).text == "Hello Acme"
    (copy / "hello.txt.j2").write_text("changed", encoding="utf-8")
    assert kept.render("hello", "sms", context).text == "Hello Acme"


def test_check_templates_lists_every_problem_once(tmp_path: Path) -> None:
    folder = _files(
        tmp_path,
        good_subject="Hi {{ customer.first_name }}",
        good_txt="Hello",
        good_html="<p>{{ brand }}</p>",
        bad_subject="{{ customer.first_name }",
        bad_txt="one\ntwo {{ shoe_size }}",
        bad_html="{{ ''.__class__ }}",
        nosubject_txt="text only",
    )
    uses = [
        ("good", "email"),
        ("bad", "email"),
        ("bad", "file"),  # the same files again: reported once
        ("nosubject", "email"),
        ("nosubject", "sms"),
    ]
    problems = check_templates(folder, TemplateSettings(), uses)
    assert problems == [
        f"{folder / 'bad.subject.j2'}:1: syntax error: unexpected '}}'",
        f"{folder / 'bad.txt.j2'}:2: undefined variable: 'shoe_size' is undefined",
        f"{folder / 'bad.html.j2'}:1: sandbox violation: access to attribute '__class__' "
        "of 'str' object is unsafe.",
        f"{folder / 'nosubject.subject.j2'}: no such file in {folder}",
    ]
    assert check_templates(folder, TemplateSettings(), [("good", "email")]) == []


def test_the_shipped_templates_render_for_the_sample_customer() -> None:
    templates = Templates(SHIPPED, TemplateSettings())
    context = sample_context("Acme")
    names = sorted({path.name.split(".")[0] for path in SHIPPED.glob("*.j2")})
    assert {"welcome", "offer_a", "offer_b", "cross_sell", "bonus_sms"} <= set(names)
    # A receipt is no marketing: it needs no unsubscribe link (RFC 8058 concerns marketing).
    transactional = {
        variant
        for campaign in load_program(DEFAULT_CONFIG_DIR / "program").campaigns
        if campaign.spec.category == "transactional"
        for variant in campaign.spec.variants
    }
    assert "receipt" in transactional
    for name in names:
        channel = "email" if (SHIPPED / f"{name}.subject.j2").exists() else "sms"
        rendered = templates.render(name, channel, context)
        assert rendered.text.strip(), name
        assert "Acme" in rendered.text, name
        # Every address a customer can follow is tracked: nothing links the shop directly.
        for part in (rendered.subject, rendered.text, rendered.html):
            assert "www.example.com" not in (part or "").replace("%2F", "/").split("to=")[0]
        if channel == "email":
            assert rendered.subject and "\n" not in rendered.subject, name
            if name not in transactional:
                assert "Unsubscribe: https://links.example.com/u/" in rendered.text, name
            assert "https://links.example.com/c/" in rendered.text, name
        if rendered.html is not None:
            assert '<img src="https://links.example.com/o/SAMPLE-TOKEN"' in rendered.html, name
            assert 'href="https://links.example.com/u/SAMPLE-TOKEN"' in rendered.html, name
    cross_sell = templates.render("cross_sell", "email", context)
    listed = re.findall(r"^\s+\d\. (\S+)$", cross_sell.text, re.MULTILINE)
    assert listed == ["slots-004", "live-casino-002", "slots-011"]
    assert cross_sell.html is not None and cross_sell.html.count(">slots-0") == 2


def test_the_shipped_templates_leave_out_what_a_message_does_not_have() -> None:
    context = sample_context("Acme")
    context.update(unsubscribe_url=None, open_url=None, recommendations=Recommendations([]))
    templates = Templates(SHIPPED, TemplateSettings())
    rendered = templates.render("cross_sell", "email", context)
    assert "Unsubscribe" not in rendered.text and rendered.html is not None
    assert "<img" not in rendered.html and "Unsubscribe" not in rendered.html
    assert "Our most popular games" in rendered.text


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    work = tmp_path / "work"
    work.mkdir()
    return Cli(work, tmp_path / "cadence.db")


def test_program_validate_renders_the_templates(cli: Cli) -> None:
    cli.ok("init", "mine")
    target = cli.cwd / "mine"
    valid = cli.ok("--config", str(target), "program", "validate")
    assert "30 templates render for a sample customer" in valid

    offer = target / "templates" / "offer_a.txt.j2"
    lines = offer.read_text(encoding="utf-8").splitlines()
    lines[2] = "As one of our {{ customer.tier }} customers,"
    offer.write_text("\n".join(lines), encoding="utf-8")
    result = cli("--config", str(target), "program", "validate")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "the templates have problems:" in result.stderr
    assert f"{offer}:3: undefined variable: 'dict object' has no attribute 'tier'" in (
        result.stderr
    )

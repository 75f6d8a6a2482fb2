"""Hostile templates: escapes from the sandbox, time and memory bombs, header injection.

Each payload must fail as a :class:`TemplateRenderError` for its one message,
within the render deadline and without taking much memory, and nothing
secret may show in any output or error. The context is built as the
delivery worker builds it, with a ``link`` that closes over the real link
signer of a settings object full of secrets.
"""

from __future__ import annotations

import time
import tracemalloc
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from core.links import LinkSigner
from core.settings import Settings, TemplateSettings
from core.templates import TemplateRenderError, Templates, message_context
from core.templates.budget import TooSlow, check_time, end_deadline, start_deadline, timed
from tests.conftest import NOW

TIMEOUT_MS = 100
SLACK_SECONDS = 0.5
"""How much more CPU than its deadline a refused render may use: one guard step, and the
memory tracing these tests switch on."""
MAX_PEAK_BYTES = 64 * 1024 * 1024
SECRETS = ("smtp-password-8c1f", "link-secret-42d9", "sms-token-77aa", "webhook-secret-0b3e")


@pytest.fixture(scope="module")
def secret_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    smtp, link, sms, webhook = SECRETS
    return Settings.model_validate(
        {
            "settings_file": tmp_path_factory.mktemp("secrets") / "cadence.toml",
            "smtp": {"password": SecretStr(smtp), "username": "mailer"},
            "api": {"link_secret": SecretStr(link)},
            "channels": {"sms": {"token": SecretStr(sms)}, "webhook": {"secret": webhook}},
            "templates": {"render_timeout_ms": TIMEOUT_MS},
        }
    )


def _context(settings: Settings, name: str = "Ana Sousa") -> dict[str, Any]:
    """Variables of one message, as the worker makes them."""
    api = settings.api
    assert api.link_secret is not None
    signer = LinkSigner(
        api.link_secret.get_secret_value().encode(), api.public_url, timedelta(days=30)
    )

    def link(url: str) -> str:
        return signer.click_url(7, 3, url, NOW)

    return message_context(
        customer={"name": name, "email": "ana@example.com", "attributes": {"tier": "gold"}},
        stage="active",
        scores={"rfm_score": 555},
        campaign="c",
        variant="v",
        brand="Acme",
        unsubscribe_url=signer.unsubscribe_url(7, 3, "email", NOW),
        open_url=signer.open_url(7, 3, NOW),
        link=link,
        recommendations=[{"product_id": "p1", "score": 2.0}],
    )


def _render(tmp_path: Path, settings: Settings, source: str, **context: Any) -> str:
    """Render ``source`` as a text template; returns the text or the error's message."""
    (tmp_path / "t.txt.j2").write_text(source, encoding="utf-8")
    templates = Templates(tmp_path, settings.templates)
    try:
        return templates.render("t", "sms", {**_context(settings), **context}).text
    except TemplateRenderError as error:
        return f"error: {error}"


ESCAPES = {
    "class_mro": "{{ ''.__class__.__mro__ }}",
    "subclasses": "{{ ().__class__.__base__.__subclasses__() }}",
    "cycler_globals": "{{ cycler.__init__.__globals__ }}",
    "attr_filter": "{{ ''|attr('__class__') }}",
    "format_map_attribute": "{{ 'a'.format_map }}",
    "format_class": "{{ '{0.__class__}'.format(1) }}",
    "format_link_globals": "{{ '{0.__globals__}'.format(link) }}",
    "format_map_call": "{{ '{x.__class__}'.format_map({'x': 1}) }}",
    "template_reference": "{{ self._TemplateReference__context }}",
    "namespace": "{{ namespace(a=1) }}",
    "joiner": "{{ joiner(',') }}",
    "lipsum": "{{ lipsum(1) }}",
    "config": "{{ config.items() }}",
    "settings": "{{ settings.smtp.password }}",
    "env": "{{ env }}",
    "os": "{{ os.environ }}",
    "link_globals": "{{ link.__globals__ }}",
    "link_call_globals": "{{ link.__call__.__globals__ }}",
    "link_function": "{{ link._track.__closure__ }}",
    "link_printed": "{{ link }}",
    "recommendations_closure": "{{ recommendations.__closure__ }}",
    "recommendations_products": "{{ recommendations._products }}",
    "range_globals": "{{ range.__globals__ }}",
    "mutation": "{{ customer.attributes.update({'tier': 'x'}) }}",
    "list_append": "{% set l = [] %}{{ l.append(1) }}",
    "include": "{% include 'other.txt.j2' %}",
    "import": "{% import 'other.txt.j2' as x %}",
    "extends": "{% extends 'other.txt.j2' %}",
}

BOMBS = {
    "range_huge": "{% for i in range(10**9) %}{% endfor %}",
    "nested_silent_loops": (
        "{% set l = range(100000)|list %}{% for i in l %}{% for j in l %}{% endfor %}{% endfor %}"
    ),
    "recursive_macro_pairs": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}"
    ),
    "endless_macro": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "select_in_itself": "{% set l = range(100000)|list %}{{ l|select('in', l)|list|length }}",
    "repeat": "{{ 'a' * 10**9 }}",
    "repeat_list": "{{ [1] * 10**9 }}",
    "power": "{{ 10**(10**10) }}",
    "power_tower": "{% set n = 10**1000 %}{{ n * n * n * n * n * n * n * n * n }}",
    "ljust": "{{ 'x'.ljust(10**9) }}",
    "zfill": "{{ 'x'.zfill(10**8) }}",
    "expandtabs": "{{ ('\t' * 100000).expandtabs(100000) }}",
    "replace_method": "{% set s = 'a' * 100000 %}{{ s.replace('a', s) }}",
    "join_method": "{% set s = 'a' * 1000000 %}{{ s.join([s, s, s]) }}",
    "to_bytes": "{{ (1).to_bytes(10**9, 'big') }}",
    "printf_width": "{{ '%1000000000s' % 'x' }}",
    "printf_star": "{{ '%*s' % (10**9, 'x') }}",
    "printf_many": "{% set s = 'x' * 1000000 %}{{ ('%s' * 1000) % ((s,) * 1000) }}",
    "format_filter": "{{ '%1000000000d'|format(1) }}",
    "center_filter": "{{ 'a'|center(10**9) }}",
    "indent_filter": "{{ ('\n' * 100000)|indent(1000) }}",
    "replace_filter": "{% set s = 'a' * 100000 %}{{ s|replace('a', s) }}",
    "join_filter": "{% set s = 'x' * 1000000 %}{{ (range(100000)|list)|join(s) }}",
    "wordwrap_filter": "{{ ('a ' * 400000)|wordwrap(1, wrapstring='x' * 1000) }}",
    "concat": "{% set s = 'x' * 1000000 %}{{ s ~ s }}",
    "doubling": "{% set s = 'x' * 600000 %}{% set s = s + s %}{% set s = s + s %}{{ s }}",
    "print_shared_list": "{% set s = 'x' * 1000000 %}{{ [s, s, s] }}",
    "print_list_of_refs": "{% set l = ['x' * 1000000] * 1000 %}{{ l|string }}",
    "captured_block": (
        "{% set s = 'x' * 1000000 %}{% set b %}{% for i in range(100000) %}{{ s }}"
        "{% endfor %}{% endset %}{{ b|length }}"
    ),
    "macro_output": (
        "{% set s = 'x' * 100000 %}{% macro m() %}{% for i in range(100000) %}{{ s }}"
        "{% endfor %}{% endmacro %}{{ m()|length }}"
    ),
    "huge_output": "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
}


@pytest.mark.parametrize("source", list(ESCAPES.values()), ids=list(ESCAPES))
def test_no_way_out_of_the_sandbox(tmp_path: Path, secret_settings: Settings, source: str) -> None:
    result = _render(tmp_path, secret_settings, source)
    assert result.startswith("error: template t.txt.j2"), result
    assert not any(secret in result for secret in SECRETS)


@pytest.mark.parametrize("source", list(BOMBS.values()), ids=list(BOMBS))
def test_time_and_memory_bombs_fail_within_the_deadline(
    tmp_path: Path, secret_settings: Settings, source: str
) -> None:
    tracemalloc.start()
    # The render's budget is its CPU time (a render that waited for a busy CPU is not
    # slow), so that is what a bomb must not exceed.
    started = time.thread_time()
    try:
        result = _render(tmp_path, secret_settings, source)
    finally:
        elapsed = time.thread_time() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert result.startswith("error: template t.txt.j2"), result[:200]
    assert any(reason in result for reason in ("too large", "too slow", "too deep")), result
    assert elapsed < TIMEOUT_MS / 1000 + SLACK_SECONDS, f"{elapsed:.2f} s: {result}"
    assert peak < MAX_PEAK_BYTES, f"{peak / 1e6:.0f} MB: {result}"


def test_the_reasons_say_what_was_refused(tmp_path: Path, secret_settings: Settings) -> None:
    def reason(source: str) -> str:
        return _render(tmp_path, secret_settings, source).split(": ", 2)[-1]

    assert reason("{{ nope }}").startswith("undefined variable: 'nope' is undefined")
    assert reason("{{ ''.__class__ }}").startswith("sandbox violation: access to attribute")
    assert reason(BOMBS["nested_silent_loops"]) == (
        f"too slow: rendering took longer than {TIMEOUT_MS} ms"
    )
    assert reason(BOMBS["range_huge"]).startswith("too large: Range too big")
    assert reason(ESCAPES["include"]) == (
        "syntax error: `include` is not available: each template file stands alone"
    )


def test_nothing_secret_reaches_output_or_errors(tmp_path: Path, secret_settings: Settings) -> None:
    """Every payload above and a few that print what they can reach: no secret shows."""
    probes = [
        *ESCAPES.values(),
        "{{ customer }}{{ scores }}{{ recommendations(5) }}{{ link('https://x.example/') }}",
        "{{ customer|tojson }}{{ unsubscribe_url }}{{ open_url }}",
        "{{ link|string }}{{ recommendations|string }}",
        "{% for k, v in customer.items() %}{{ k }}={{ v }};{% endfor %}",
    ]
    for source in probes:
        result = _render(tmp_path, secret_settings, source)
        assert not any(secret in result for secret in SECRETS), (source, result)


def test_a_line_break_in_a_variable_never_leaves_the_subject_line(tmp_path: Path) -> None:
    (tmp_path / "m.subject.j2").write_text("Hello {{ customer.name }}!", encoding="utf-8")
    (tmp_path / "m.txt.j2").write_text("Dear {{ customer.name }}", encoding="utf-8")
    templates = Templates(tmp_path, TemplateSettings())
    settings = Settings(api={"link_secret": SecretStr("s")})
    for name in (
        "x\r\nBcc: evil@x",
        "x\nBcc: evil@x",
        "x\rBcc: evil@x",
        "x\x0b\x0c\x1c\x85\u2028\u2029\x00Bcc: evil@x",
    ):
        rendered = templates.render("m", "email", _context(settings, name))
        assert rendered.subject == "Hello x Bcc: evil@x!", repr(rendered.subject)
        assert rendered.text == f"Dear {name}"  # the body keeps its line breaks


def test_ordinary_templates_still_work_under_the_guards(tmp_path: Path) -> None:
    source = (
        "{{ '-' * 10 }}|{{ '%.2f' % 3.14159 }}|{{ '%s and %s'|format('a', 'b') }}|"
        "{{ ['x', 'y']|join(', ') }}|{{ customer.name|replace('Ana', 'Anna')|upper }}|"
        "{{ 'a\nb'|indent(2) }}|{{ customer.name ~ '!' }}|{{ 2 ** 10 }}|{{ 6 * 7 }}|"
        "{% for i in range(3) %}{{ loop.cycle('o', 'e') }}{% endfor %}|"
        "{% macro tag(text) %}<{{ text }}>{% endmacro %}{{ tag('m') }}|"
        "{% set block %}in a block{% endset %}{{ block|title }}|"
        "{{ customer.attributes.items()|list|length }}|{{ recommendations(3)|map("
        "attribute='product_id')|join }}|{{ customer.name.split()|first }}|"
        "{{ customer.missing|default('none') }}|{{ 'x'.center(5) }}|"
        "{% for p in recommendations(1) recursive %}{{ p.product_id }}{% endfor %}"
    )
    settings = Settings(api={"link_secret": SecretStr("s")})
    assert _render(tmp_path, settings, source) == (
        "----------|3.14|a and b|x, y|ANNA SOUSA|a\n  b|Ana Sousa!|1024|42|oeo|<m>|"
        "In A Block|1|p1|Ana|none|  x  |p1"
    )


def test_the_deadline_counts_the_renders_cpu_time_not_time_spent_waiting() -> None:
    token = start_deadline(50)
    try:
        time.sleep(0.12)  # descheduled on a busy host: past the deadline on the wall only
        check_time()
        assert list(timed(range(3))) == [0, 1, 2]
        busy_until = time.thread_time() + 0.2
        with pytest.raises(TooSlow):
            while time.thread_time() < busy_until:
                check_time()
    finally:
        end_deadline(token)

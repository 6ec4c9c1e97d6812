"""ANSI to HTML and incremental UTF-8 decoding of output chunks (no database)."""

from __future__ import annotations

from multiflexi_web.config import PROJECT_ROOT
from multiflexi_web.views.jobs.ansi import (
    AnsiConverter,
    Style,
    _nearest,
    apply_sgr,
    palette_css,
    palette_rgb,
    to_html,
)
from multiflexi_web.views.jobs.live_output import render_chunks


def test_html_is_escaped_before_colours() -> None:
    out = to_html("\x1b[31m<script>alert(1)</script>&\x1b[0m done")
    assert out == '<span class="ansi-fg-c1">&lt;script&gt;alert(1)&lt;/script&gt;&amp;</span> done'


def test_bright_bold_background_and_reset() -> None:
    out = to_html("\x1b[1;92;44mok\x1b[22m plain\x1b[0m end")
    assert out == (
        '<span class="ansi-bold ansi-fg-c10 ansi-bg-c4">ok</span>'
        '<span class="ansi-fg-c10 ansi-bg-c4"> plain</span> end'
    )


def test_256_and_truecolour_become_palette_classes_never_inline_styles() -> None:
    # The CSP forbids style attributes: 24-bit colours take the nearest of the 256 entries.
    assert to_html("\x1b[38;5;196mx") == '<span class="ansi-fg-c196">x</span>'
    assert to_html("\x1b[48;2;1;2;300mx") == '<span class="ansi-bg-c21">x</span>'
    assert to_html("\x1b[38;5;244mx") == '<span class="ansi-fg-c244">x</span>'
    assert to_html("\x1b[38;2;255;0;0mx") == '<span class="ansi-fg-c196">x</span>'
    assert to_html("\x1b[38;2;130;130;131mx") == '<span class="ansi-fg-c244">x</span>'
    css = (PROJECT_ROOT / "static" / "ansi256.css").read_text()
    assert ".ansi-fg-c196 { color: #ff0000; }" in css
    assert ".ansi-bg-c21 { background: #0000ff; }" in css
    assert ".ansi-fg-c244 { color: #808080; }" in css


def test_the_palette_stylesheet_is_generated_from_the_palette() -> None:
    assert (PROJECT_ROOT / "static" / "ansi256.css").read_text() == palette_css()
    assert all(palette_rgb(_nearest(palette_rgb(n))) == palette_rgb(n) for n in range(16, 256))


def test_non_colour_sequences_and_controls_are_dropped() -> None:
    out = to_html("a\x1b[2K\x1b]0;title\x07b\x07c\x00d\r\ne\rf\x1b")
    assert out == "abcd\ne\nf"


def test_style_and_partial_sequence_carry_across_feeds() -> None:
    conv = AnsiConverter()
    first = conv.feed("red: \x1b[3")
    second = conv.feed("1mhot\x1b[")
    third = conv.feed("0m cold")
    assert first == "red: "
    assert second == '<span class="ansi-fg-c1">hot</span>'
    assert third == " cold"


def test_unknown_sgr_codes_are_ignored() -> None:
    assert apply_sgr(Style(), "5;7;53") == Style()
    assert apply_sgr(Style(fg="c1"), "") == Style()
    # More digits than any code has (int() of over 4,300 raises): ignored, the rest applies.
    assert apply_sgr(Style(), "1" * 5000 + ";31") == Style(fg="c1")
    assert "before" in to_html("before \x1b[" + "1" * 5000 + "m after")


def _chunks(*parts: tuple[str, bytes]) -> list[tuple[int, str, bytes]]:
    return [(i + 1, stream, data) for i, (stream, data) in enumerate(parts)]


def test_characters_split_between_chunks_survive() -> None:
    data = "žluťoučký kůň 🐎".encode()
    parts = [
        ("stdout", data[:2]),
        ("stdout", data[2:7]),
        ("stdout", data[7:-1]),
        ("stdout", data[-1:]),
    ]
    pieces, last = render_chunks(_chunks(*parts), 0, final=True)
    assert [p.stream for p in pieces] == ["stdout"]
    assert pieces[0].html == "žluťoučký kůň 🐎"
    assert last == 4


def test_interleaved_streams_decode_separately() -> None:
    a, b = "čau\n".encode(), "ř!".encode()
    parts = [("stdout", a[:1]), ("stderr", b[:1]), ("stdout", a[1:]), ("stderr", b[1:])]
    pieces, last = render_chunks(_chunks(*parts), 0, final=True)
    assert "".join(p.html for p in pieces if p.stream == "stdout") == "čau\n"
    assert "".join(p.html for p in pieces if p.stream == "stderr") == "ř!"
    assert last == 4


def test_live_job_leaves_a_trailing_half_character_for_the_next_poll() -> None:
    data = "ab€".encode()
    pieces, last = render_chunks(
        _chunks(("stdout", data[:2]), ("stdout", data[2:4])), 7, final=False
    )
    assert "".join(p.html for p in pieces) == "ab"
    assert last == 1  # chunk 2 is read again together with the rest of the character
    alone, last_alone = render_chunks([(2, "stdout", data[2:4])], 1, final=False)
    assert alone == [] and last_alone == 1


def test_finished_job_flushes_a_broken_tail_as_replacement() -> None:
    pieces, last = render_chunks(_chunks(("stdout", b"ok\xe2\x82")), 0, final=True)
    assert pieces[0].html == "ok\ufffd"
    assert last == 1


def test_invalid_bytes_are_replaced_not_fatal() -> None:
    pieces, _ = render_chunks(_chunks(("stderr", b"\xff\xfe<b>")), 0, final=False)
    assert pieces[0].html == "\ufffd\ufffd&lt;b&gt;"

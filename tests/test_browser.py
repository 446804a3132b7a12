"""The app in a real headless Chromium, driven by Playwright, against gunicorn on 127.0.0.1."""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import running_gunicorn

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Flags for a sandboxed machine without a network: no background connections, no GPU.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def server(mnist_dir, model_path):
    env = {"MNIST_DIR": str(mnist_dir), "MODEL_PATH": str(model_path), "WEB_CONCURRENCY": "2"}
    with running_gunicorn(env) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        message = f"Chromium not found at {CHROMIUM}; install it with: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.console_errors = errors
    yield page
    context.close()
    assert errors == [], f"errors in the browser console: {errors}"


def shown_index(page) -> int:
    src = page.locator("#digit img").get_attribute("src")
    return int(re.fullmatch(r"/digits/(\d+)\.png", src).group(1))


def test_next_swaps_digit_and_url(page, server):
    page.goto(f"{server}/digits/5")
    assert shown_index(page) == 5
    page.click("#next")
    page.wait_for_url(re.compile(r"/digits/\d+$"))
    expect(page.locator("#digit img")).not_to_have_attribute("src", "/digits/5.png")
    new_index = shown_index(page)
    assert page.url == f"{server}/digits/{new_index}"
    assert page.title() == f"Test digit {new_index} · MNIST digit browser"
    assert page.locator("header.site").count() == 1


def test_back_restores_full_page(page, server):
    page.goto(f"{server}/digits/5")
    page.click("#next")
    page.wait_for_url(lambda url: not url.endswith("/digits/5"))
    page.go_back()
    page.wait_for_url(lambda url: url.endswith("/digits/5"))
    expect(page.locator("#digit img")).to_have_attribute("src", "/digits/5.png")
    assert page.locator("header.site").count() == 1
    assert page.locator("footer.site").count() == 1
    page.reload()
    assert shown_index(page) == 5
    assert page.locator("header.site").count() == 1


def test_keyboard_next_and_previous(page, server):
    page.goto(f"{server}/digits/11")
    page.keyboard.press("n")
    page.wait_for_url(lambda url: not url.endswith("/digits/11"))
    assert shown_index(page) != 11
    page.keyboard.press("p")
    page.wait_for_url(lambda url: url.endswith("/digits/11"))
    page.keyboard.press("ArrowRight")
    page.wait_for_url(lambda url: not url.endswith("/digits/11"))
    page.keyboard.press("ArrowLeft")
    page.wait_for_url(lambda url: url.endswith("/digits/11"))


def test_works_without_javascript(browser, server):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{server}/digits/5")
    assert page.locator("#next").get_attribute("href") == "/digits/random"
    page.click("#next")
    page.wait_for_url(re.compile(r"/digits/\d+$"))
    assert page.url == f"{server}/digits/{shown_index(page)}"
    assert page.locator("header.site").count() == 1
    context.close()


def draw_strokes(page, strokes):
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=8)
        page.mouse.up()


def test_draw_one_gets_prediction(page, server):
    page.goto(f"{server}/draw")
    draw_strokes(page, [[(0.5, 0.15), (0.5, 0.85)]])
    page.wait_for_selector("#result strong.predicted", timeout=15_000)
    assert page.locator("#result strong.predicted").inner_text() == "1"
    assert page.locator("#result .model-input img").get_attribute("src").startswith("data:image/png;base64,")


def test_draw_seven_gets_prediction(page, server):
    page.goto(f"{server}/draw")
    draw_strokes(page, [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]])
    page.wait_for_selector("#result strong.predicted", timeout=15_000)
    assert page.locator("#result strong.predicted").inner_text() == "7"


def test_clear_removes_drawing(page, server):
    page.goto(f"{server}/draw")
    draw_strokes(page, [[(0.5, 0.15), (0.5, 0.85)]])
    page.wait_for_selector("#result strong.predicted", timeout=15_000)
    page.click("#clear")
    assert page.locator("#result strong.predicted").count() == 0
    blank = page.evaluate(
        "() => { const c = document.getElementById('pad');"
        " return c.getContext('2d').getImageData(0, 0, c.width, c.height).data.every(v => v === 0); }"
    )
    assert blank
    page.click("#predict-drawing")
    page.wait_for_selector("#result .message", timeout=15_000)
    assert "No digit found" in page.locator("#result .message").inner_text()
    assert page.console_errors == ["Failed to load resource: the server responded with a status of 422 (UNPROCESSABLE ENTITY)"]
    page.console_errors.clear()


def test_upload_file_gets_prediction(page, server, test_split, tmp_path):
    images, labels = test_split
    index = int(np.flatnonzero(labels == 4)[0])
    path = tmp_path / "four.png"
    Image.fromarray(255 - images[index]).resize((140, 140), Image.Resampling.NEAREST).save(path)

    page.goto(f"{server}/draw")
    page.set_input_files("#image", str(path))
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#result strong.predicted", timeout=15_000)
    assert page.locator("#result strong.predicted").inner_text() == "4"
    assert page.url == f"{server}/draw"


def test_upload_without_javascript(browser, server, test_split, tmp_path):
    images, labels = test_split
    index = int(np.flatnonzero(labels == 2)[0])
    path = tmp_path / "two.png"
    Image.fromarray(images[index]).save(path)

    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{server}/draw")
    assert not page.locator("#pad-box").is_visible()
    page.set_input_files("#image", str(path))
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#result strong.predicted")
    assert page.locator("#result strong.predicted").inner_text() == "2"
    assert page.locator("header.site").count() == 1
    context.close()


def test_confusion_cell_opens_explorer(page, server):
    page.goto(f"{server}/confusion")
    cell = page.locator("td:not(.diagonal) a").first
    match = re.fullmatch(r"(\d+) digits? labelled (\d) predicted as (\d)", cell.get_attribute("aria-label"))
    count, label, predicted = (int(g) for g in match.groups())
    cell.click()
    page.wait_for_url(re.compile(r"/explore\?"))
    tags = page.locator(".grid .tag:first-of-type").all_inner_texts()
    assert len(tags) == count
    assert set(tags) == {f"{label}→{predicted}"}


def test_explorer_filter_updates_url(page, server):
    page.goto(f"{server}/explore")
    page.select_option("select[name=outcome]", "wrong")
    page.wait_for_url(re.compile(r"outcome=wrong"))
    expect(page.locator(".grid li.correct")).to_have_count(0)
    assert page.locator(".grid li.wrong").count() > 0
    page.reload()
    assert page.locator(".grid li.correct").count() == 0
    assert page.locator("select[name=outcome]").input_value() == "wrong"


def test_usable_at_narrow_width(browser, server):
    context = browser.new_context(viewport={"width": 360, "height": 740})
    page = context.new_page()
    for path in ("/digits/5", "/explore", "/confusion", "/model", "/draw"):
        page.goto(f"{server}{path}")
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= 360, f"{path} is {scroll_width} px wide at a 360 px viewport"
    context.close()


def test_focus_is_visible(page, server):
    page.goto(f"{server}/digits/5")
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"

"""The web page in a real headless browser: Playwright driving Debian's Chromium against the served
receiver."""

import os
import shutil

import pytest

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed "
                                "(the Makefile installs it where it can)")
# the flags the machine's probe found necessary: no sandbox as root, no background connections on a
# closed network
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page(served):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page()
        pg.set_default_timeout(120_000)
        pg.goto(served.url + "/")
        yield pg
        browser.close()


def test_a_typed_sentence_arrives_beside_the_digital_baseline(page, served):
    assert served.pipe.spec.name in page.title()
    page.fill("#text", "see you at the station at 6, don't be late\n"
              "the courier leaves parcels at the back door")
    page.select_option("#channel", "rayleigh")
    page.fill("#snr", "10")
    page.click("#send")
    page.wait_for_selector("section.result")
    first, second = page.locator("section.result").nth(0), page.locator("section.result").nth(1)
    cards = first.locator(".card")
    assert cards.count() == 2 and cards.nth(0).locator("p.text").inner_text().strip()
    assert "LDPC" in cards.nth(1).inner_text() and "channel uses" in cards.nth(0).inner_text()
    # the sentence the local KB holds arrives with the KB sentence its decoder used, and where it came from
    assert second.locator(".card p.text").first.inner_text() == "the courier leaves parcels at the back door"
    table = second.locator("table").inner_text()
    assert "the courier leaves parcels at the back door" in table and "local" in table


def test_a_dropped_photo_comes_back_with_its_caption_and_answer(page, tmp_path):
    from PIL import Image
    from skimage import data

    path = tmp_path / "coffee.jpg"
    Image.fromarray(data.coffee()).resize((80, 60)).save(path)
    page.fill("#text", "")
    page.set_input_files("#file", str(path))
    page.wait_for_function("document.getElementById('picked').textContent.includes('coffee.jpg')")
    page.fill("#questions", "what is in the cup?")
    page.click("#send")
    page.wait_for_selector("section.result img.out")
    section = page.locator("section.result").first
    assert section.locator("img.out").count() == 2  # what arrived, and the HEIF + LDPC baseline
    assert section.locator("p.caption").count() == 1
    assert "what is in the cup?" in section.locator("p.answer").first.inner_text()


def test_an_error_is_shown_not_swallowed(page):
    page.fill("#text", "x" * 10)
    page.evaluate("document.getElementById('snr').max = '99'")
    page.fill("#snr", "99")
    page.click("#send")
    page.wait_for_selector("#error")
    assert "snr_db" in page.inner_text("#error")

"""What a reader does on the book, done in the browser: click, search, launch, download, dark mode.

Used by scripts/browser_check.py after it has checked every page. Each action returns the
problems it found (an empty list when the reader got what they came for).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
from PIL import Image
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import headless
from book_pages import Page, heading_title, notebook_png_count

WAIT_S = 20


def _wait(driver, condition, what: str) -> str | None:
    """``None`` once ``condition(driver)`` holds, else a problem naming ``what``."""
    try:
        WebDriverWait(driver, WAIT_S, poll_frequency=0.2).until(condition)
        return None
    except TimeoutException:
        return f"{what} (waited {WAIT_S} s)"


def _open(driver, html_dir: Path, page_name: str) -> None:
    headless.load(driver, (html_dir / page_name).resolve().as_uri())


def open_solution(driver, html_dir: Path, pages: list[Page]) -> list[str]:
    """A solution dropdown is closed, opens on a click, and then shows its text."""
    page = next((p for p in pages if "sd-dropdown" in (html_dir / p.html_name).read_text(
        encoding="utf-8")), None)
    if page is None:
        return ["solutions: no page has a solution dropdown"]
    _open(driver, html_dir, page.html_name)
    details = driver.find_element(By.CSS_SELECTOR, "details.sd-dropdown")
    body = details.find_element(By.CSS_SELECTOR, ".sd-summary-content")
    if details.get_attribute("open") is not None or body.is_displayed():
        return [f"{page.docname}: the solution is open before any click"]
    details.find_element(By.TAG_NAME, "summary").click()
    problem = _wait(driver, lambda d: body.is_displayed() and body.text.strip(),
                    f"{page.docname}: a click on 'Solution' did not show its text")
    return [problem] if problem else []


def search_finds(driver, html_dir: Path, pages: list[Page], query: str = "LeNet") -> list[str]:
    """The search page lists the chapter titled ``query`` among its results."""
    chapter = next((p for p in pages if heading_title(p.source) == query), None)
    if chapter is None:
        return [f"search: no chapter titled {query!r} to look for"]
    headless.load(driver, (html_dir / "search.html").resolve().as_uri() + f"?q={query}")
    link = f"a[href^='{chapter.html_name}']"
    problem = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f"#search-results {link}"),
                    f"search: {query!r} does not list {chapter.html_name}")
    return [problem] if problem else []


def launch_menu(driver, html_dir: Path, page: Page, colab_url: str) -> list[str]:
    """The launch button opens a menu whose Colab entry opens this chapter's notebook."""
    _open(driver, html_dir, page.html_name)
    menu = driver.find_element(By.CSS_SELECTOR, ".dropdown-launch-buttons")
    menu.find_element(By.CSS_SELECTOR, "button").click()
    colab = menu.find_elements(By.CSS_SELECTOR, f"a[href^='{colab_url}']")
    if not colab:
        return [f"{page.docname}: the launch menu has no Colab entry"]
    problem = _wait(driver, lambda d: colab[0].is_displayed(),
                    f"{page.docname}: the launch menu did not show its Colab entry")
    href = colab[0].get_attribute("href")
    if not href.endswith(f"/{page.docname}.ipynb"):
        problem = f"{page.docname}: Colab opens {href}, not {page.docname}.ipynb"
    return [problem] if problem else []


def _downloaded_text(driver, download_dir: Path, handles: set[str]) -> str | None:
    """The downloaded notebook's text: a file in ``download_dir``, or a tab showing it."""
    for path in download_dir.glob("*.ipynb"):
        return path.read_text(encoding="utf-8")
    for handle in set(driver.window_handles) - handles:
        driver.switch_to.window(handle)
        text = driver.execute_script("return document.body ? document.body.innerText : ''")
        return text or None
    return None


def download_notebook(driver, html_dir: Path, page: Page, download_dir: Path) -> list[str]:
    """The download menu's ``.ipynb`` entry gives this chapter's notebook, all its cells."""
    _open(driver, html_dir, page.html_name)
    main_window, handles = driver.current_window_handle, set(driver.window_handles)
    menu = driver.find_element(By.CSS_SELECTOR, ".dropdown-download-buttons")
    menu.find_element(By.CSS_SELECTOR, "button").click()
    menu.find_element(By.CSS_SELECTOR, ".btn-download-source-button").click()
    deadline, text = time.monotonic() + WAIT_S, None
    while text is None and time.monotonic() < deadline:
        time.sleep(0.3)
        text = _downloaded_text(driver, download_dir, handles)
    for handle in set(driver.window_handles) - handles:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(main_window)
    if text is None:
        return [f"{page.docname}: the .ipynb download gave nothing"]
    try:
        got = nbformat.reads(text, as_version=4)
    except (json.JSONDecodeError, nbformat.reader.NotJSONError) as error:
        return [f"{page.docname}: the .ipynb download is not a notebook ({error})"]
    expected = len(nbformat.read(page.source, as_version=4).cells)
    if len(got.cells) != expected:
        return [f"{page.docname}: the downloaded notebook has {len(got.cells)} cells, "
                f"the chapter {expected}"]
    return []


def _switch_theme(driver, mode: str) -> bool:
    """Click the theme button (as a reader does) until the page is in ``mode``."""
    for _ in range(4):
        if driver.execute_script("return document.documentElement.dataset.theme") == mode:
            return True
        buttons = [b for b in driver.find_elements(By.CSS_SELECTOR, "button.theme-switch-button")
                   if b.is_displayed()]
        if not buttons:
            return False
        buttons[0].click()
        time.sleep(0.3)
    return driver.execute_script("return document.documentElement.dataset.theme") == mode


def _transparent_figures(driver, html_dir: Path, page: Page) -> list[str]:
    """Figures with see-through corners, whose black text would vanish on a dark page."""
    bad = []
    for src in driver.execute_script(
            "return Array.from(document.querySelectorAll('main .cell_output img'), i => i.src)"):
        path = Path(src.removeprefix("file://"))
        with Image.open(path) as image:
            rgba = image.convert("RGBA")
            corners = [(0, 0), (rgba.width - 1, 0), (0, rgba.height - 1)]
            if any(rgba.getpixel(xy)[3] < 255 for xy in corners):
                bad.append(f"{page.docname}: figure {path.name} is transparent, unreadable "
                           "in dark mode")
    return bad


def dark_mode(driver, html_dir: Path, page: Page, out_dir: Path, axe) -> list[str]:
    """One figure of ``page`` screenshotted in light and dark mode; dark mode passes axe."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _open(driver, html_dir, page.html_name)
    problems = []
    for mode in ("light", "dark"):
        if not _switch_theme(driver, mode):
            problems.append(f"{page.docname}: the theme button does not reach {mode} mode")
            continue
        figure = driver.find_element(By.CSS_SELECTOR, "main .cell_output img")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", figure)
        # The pointer leaves the theme button, so its tooltip is not in the picture.
        ActionChains(driver).move_to_element(figure).perform()
        time.sleep(0.3)
        shot = out_dir / f"{page.docname.replace('/', '__')}-{mode}.png"
        driver.save_screenshot(str(shot))
        print(f"screenshot ({mode} mode): {shot}", flush=True)
    problems += [f"{page.docname} (dark mode): {v}" for v in axe(driver)]
    problems += _transparent_figures(driver, html_dir, page)
    _switch_theme(driver, "light")
    return problems


def run_all(driver, html_dir: Path, pages: list[Page], colab_url: str, download_dir: Path,
            screenshot_dir: Path, axe) -> list[str]:
    """Every reader action, on the first notebook chapter with figures; console errors count."""
    chapters = [p for p in pages if p.is_notebook and notebook_png_count(p.source)]
    if not chapters:
        return ["reader actions: no notebook chapter with figures"]
    chapter = chapters[0]
    actions = {
        "open a solution": lambda: open_solution(driver, html_dir, pages),
        "search": lambda: search_finds(driver, html_dir, pages),
        "launch menu": lambda: launch_menu(driver, html_dir, chapter, colab_url),
        "download": lambda: download_notebook(driver, html_dir, chapter, download_dir),
        "dark mode": lambda: dark_mode(driver, html_dir, chapter, screenshot_dir, axe),
    }
    problems = []
    for name, action in actions.items():
        found = action() + [f"console error: {e}" for e in headless.console_errors(driver)]
        found += [f"asked the network for {u}" for u in headless.outside_requests(driver)[:1]]
        problems += [f"reader actions, {name}: {p}" for p in found]
    return problems

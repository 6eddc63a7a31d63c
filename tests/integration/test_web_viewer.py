"""The web queue viewer (SPEC §5, issue 12) in a real headless Chromium
(Debian chromium + chromium-driver, driven by python3-selenium): it shows a
deferred message whose subject holds HTML and script as literal text (no
element made of it, no alert), opens its details, bounces it with the two
clicks of its bounce button, and the message leaves the queue while its
notice reaches the sender's Maildir. Selenium or Chromium missing is a
failure, never a skip."""
import pathlib

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from admin_env import admin_port, admin_tern, send_deferred, token_of
from delivery_env import dsn_summary, wait_for_maildir, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SUBJECT = "<script>alert(1)</script><b>x</b>"


def browser(profile):
    for path in (CHROMIUM, CHROMEDRIVER):
        assert pathlib.Path(path).exists(), f"{path} is missing: apt-get install chromium chromium-driver"
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


def no_alert(driver):
    try:
        text = driver.switch_to.alert.text
    except NoAlertPresentException:
        return True
    raise AssertionError(f"an alert opened: {text!r}")


def test_viewer_shows_html_as_text_and_bounces(tmp_path):
    tern = admin_tern(tmp_path / "t")
    other = send_deferred(tern, "one@fabrikam.test", subject="plain")
    q = send_deferred(tern, "two@fabrikam.test", subject=SUBJECT)
    driver = browser(tmp_path / "profile")
    try:
        driver.get(f"http://127.0.0.1:{admin_port(tern)}/#token={token_of(tern)}")
        wait = WebDriverWait(driver, 30)
        row_css = f'#rows tr[data-id="{q["id"]}"]'
        row = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, row_css) and
                         d.find_element(By.CSS_SELECTOR, row_css))
        # the subject arrives with the message's details: literal text, no element made of it
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, row_css + " td.subject").text != "…")
        assert row.find_element(By.CSS_SELECTOR, "td.subject").text == SUBJECT
        assert row.find_element(By.CSS_SELECTOR, "td.sender").text == "kate@example.test"
        assert "two@fabrikam.test" in row.text and "deferred" in row.text
        assert row.find_elements(By.TAG_NAME, "b") == [] and row.find_elements(By.TAG_NAME, "script") == []
        assert len(driver.find_elements(By.TAG_NAME, "script")) == 1  # viewer.js alone
        assert no_alert(driver)
        assert len(driver.find_elements(By.CSS_SELECTOR, "#rows tr")) == 2

        # filters: by recipient domain and by state
        domain = driver.find_element(By.ID, "f-domain")
        domain.send_keys("nowhere.test")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#rows tr") == [])
        domain.clear()
        domain.send_keys("fabrikam")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#rows tr")) == 2)
        domain.clear()

        # details: the envelope, the recipients, the header section, the trail
        driver.find_element(By.CSS_SELECTOR, row_css).click()
        wait.until(lambda d: d.find_element(By.ID, "details").is_displayed() and
                   d.find_element(By.ID, "d-id").text == str(q["id"]))
        details = driver.find_element(By.ID, "details")
        assert SUBJECT in driver.find_element(By.ID, "d-envelope").text
        assert f"Subject: {SUBJECT}" in driver.find_element(By.ID, "d-headers").text
        assert "two@fabrikam.test" in driver.find_element(By.ID, "d-recipients").text
        assert details.find_elements(By.TAG_NAME, "b") == [] and details.find_elements(By.TAG_NAME, "script") == []
        wait.until(lambda d: d.find_element(By.ID, "d-trail-status").text != "" or
                   d.find_elements(By.CSS_SELECTOR, "#d-trail tr"))
        trail = driver.find_element(By.ID, "d-trail-status").text
        assert trail == "trail not available" or driver.find_elements(By.CSS_SELECTOR, "#d-trail tr"), trail
        assert no_alert(driver)

        # bounce: the first click asks for confirmation, the second acts
        bounce = driver.find_element(By.ID, "a-bounce")
        bounce.click()
        wait.until(lambda d: d.find_element(By.ID, "a-bounce").text == "Confirm bounce")
        assert [m["id"] for m in tern.queue_json() if m["id"] == q["id"]] == [q["id"]]  # not yet
        bounce.click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, row_css) == [])
        assert "returned to kate@example.test" in driver.find_element(By.ID, "action-result").text
        assert no_alert(driver)
        # the other message is still shown; the notice is in the sender's Maildir
        assert driver.find_elements(By.CSS_SELECTOR, f'#rows tr[data-id="{other["id"]}"]')
        # the page lives within its Content-Security-Policy (no inline script or style)
        refused = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
        assert refused == [], refused
    finally:
        driver.quit()
    [notice] = wait_for_maildir(tern, "kate")
    d = dsn_summary(notice)
    assert d["recipients"][0]["action"] == "failed"
    assert "Bounced by the administrator" in d["recipients"][0]["diagnostic-code"]
    wait_until(lambda: [m["id"] for m in tern.queue_json()] == [other["id"]], what="only the other message left")
    assert tern.stop() == 0

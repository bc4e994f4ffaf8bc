"""The operator console in real headless Chromium against a real Gunicorn (2 workers, SQLite,
usage recorded, the mock model): sign in from the keyboard, a key's whole life (created with
its secret shown once, used for a chat, its request in the usage chart with the numbers of
GET /admin/usage, limits and allowlist edited, rotated, revoked), the routing page refreshing,
the audit log filtered; no console error or page error on any page, and screenshots of every
page at 1280 and 390 px (no sideways scrolling on the phone) in $NEUROROUTE_TEST_ARTIFACTS
(default test-artifacts/)/console.

One server and one browser for the module: each test opens its own browser context.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e import scenarios
from tests.e2e.browser import chromium
from tests.procs import MASTER_KEY, ROOT, Proc, running, start_gateway

pytestmark = pytest.mark.e2e
ARTIFACTS = Path(os.environ.get("NEUROROUTE_TEST_ARTIFACTS") or ROOT / "test-artifacts") / \
    "console"
MODELS = [{"name": "mock-gpt", "provider": "mock", "model": "mock-gpt",
           "mock": {"latency_ms": 5, "tokens": 12}}]
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "Hello"}]}
WIDTHS = (1280, 390)
WAIT_S = 10  # usage batches (0.2 s) and the other worker's sync (0.5 s) land well within


@pytest.fixture(scope="module")
def gateway(e2e_tmp: Path) -> Iterator[Proc]:
    env = {"NEUROROUTE_USAGE_ENABLED": "true", "NEUROROUTE_USAGE_FLUSH_INTERVAL": "0.2",
           "NEUROROUTE_SYNC_INTERVAL": "0.5"}
    with running(start_gateway(e2e_tmp, MODELS, workers=2, env=env)) as proc:
        yield proc


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


class Tab:
    """A page in its own browser context, recording console errors/warnings and page errors
    (every test asserts there are none, but for the ones it says it expects)."""

    def __init__(self, browser: Any, url: str, *, signed_in: bool) -> None:
        self.url = url
        self.context = browser.new_context(viewport={"width": WIDTHS[0], "height": 900})
        if signed_in:  # the context's request API shares its cookies with its pages
            resp = self.context.request.post(f"{url}/ui/session", headers=AUTH)
            assert resp.status == 200, resp.text()
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.problems: list[str] = []
        self.expected: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"pageerror: {exc}"))

    def _console(self, msg: Any) -> None:
        if msg.type in ("error", "warning"):
            self.problems.append(f"{msg.type}: {msg.text}")

    def open(self, path: str) -> Any:
        self.page.goto(self.url + path)
        self.page.wait_for_selector("body[data-ready=true]")
        return self.page

    def unexpected(self) -> list[str]:
        return [p for p in self.problems if not any(e in p for e in self.expected)]

    def shoot(self, name: str) -> None:
        """Screenshots at each width; on the phone nothing may scroll sideways."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for width in WIDTHS:
            self.page.set_viewport_size({"width": width, "height": 900})
            self.page.wait_for_timeout(150)  # charts redraw at their new width
            overflow = self.page.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} at {width} px is {overflow} px too wide"
            self.page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
        self.page.set_viewport_size({"width": WIDTHS[0], "height": 900})


@pytest.fixture
def tab(browser: Any, gateway: Proc) -> Iterator[Callable[..., Tab]]:
    tabs: list[Tab] = []

    def open_tab(*, signed_in: bool = True) -> Tab:
        tabs.append(Tab(browser, gateway.url, signed_in=signed_in))
        return tabs[-1]

    yield open_tab
    for t in tabs:
        t.context.close()
    problems = [p for t in tabs for p in t.unexpected()]
    assert not problems, problems


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def midnight_after(day: str) -> str:
    return f"{date.fromisoformat(day) + timedelta(days=1)}T00:00:00Z"


def eventually(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_S} s: {what}")
        time.sleep(0.1)


def chat_status(gateway: Proc, key: str) -> int:
    return requests.post(f"{gateway.url}/v1/chat/completions", json=CHAT, timeout=10,
                         headers={"Authorization": f"Bearer {key}"}).status_code


def admin(gateway: Proc, method: str, path: str, **kwargs: Any) -> Any:
    resp = requests.request(method, gateway.url + path, headers=AUTH, timeout=10, **kwargs)
    assert resp.status_code < 300, resp.text
    return resp.json()


# -- tests -----------------------------------------------------------------------------------


def test_sign_in_with_the_keyboard(tab: Callable[..., Tab], gateway: Proc) -> None:
    t = tab(signed_in=False)
    page = t.open("/ui")
    assert page.locator("#sign-in").is_visible() and page.locator("#nav").is_hidden()
    t.shoot("sign-in")
    for _ in range(5):  # the skip link, the brand link, then the key field
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "sign-in-key":
            break
    assert page.evaluate("document.activeElement.id") == "sign-in-key"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"

    member = admin(gateway, "POST", "/admin/keys", json={"name": "not-an-admin"})
    t.expected.append("status of 403")  # the browser logs the refused sign-in's status
    page.keyboard.type(member["key"])
    page.keyboard.press("Enter")
    expect(page.locator("#sign-in-error")).to_contain_text("admin keys")
    assert page.locator("#nav").is_hidden()

    page.keyboard.press("Control+A")
    page.keyboard.type(MASTER_KEY)
    page.keyboard.press("Enter")
    page.locator("#nav").wait_for()
    page.locator("h1", has_text="Keys").wait_for()
    assert page.evaluate("document.activeElement.tagName") == "H1"  # focus moved to the page
    assert page.input_value("#sign-in-key") == ""  # the key is not kept in the page
    assert "Signed in as master" in page.inner_text("#who")
    cookie = next(c for c in t.context.cookies() if c["name"] == "neuroroute_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def test_a_keys_life_in_the_console(tab: Callable[..., Tab], gateway: Proc) -> None:
    t = tab()
    page = t.open("/ui/keys")
    page.click("#new-key")
    dialog = page.locator("dialog")
    dialog.get_by_label("Name").fill("console-e2e")
    dialog.get_by_role("button", name="Create key").click()
    secret = page.locator("#key-secret").inner_text()
    assert secret.startswith("sk-nr-")
    page.click("#secret-done")
    page.locator("dialog").wait_for(state="detached")
    assert secret not in page.content()  # shown once: gone with its dialog
    keys = admin(gateway, "GET", "/admin/keys", params={"limit": 100})["data"]
    key = next(k for k in keys if k["name"] == "console-e2e")
    assert secret not in str(keys)
    row = page.locator(f"tr[data-key-id='{key['id']}']")
    assert "active" in row.inner_text()

    # Its first request, in the usage chart: the numbers of GET /admin/usage.
    assert chat_status(gateway, secret) == 200
    day = today()
    page = t.open(f"/ui/usage?start={day}&end={day}&group_by=key&metric=requests")
    bar = page.locator(f"#usage-group-chart .bar[data-group='{key['id']}']")

    def drawn() -> bool:
        if bar.count():
            return True
        page.reload()
        page.wait_for_selector("#usage-day-chart svg")
        return False

    eventually(drawn, "the key's request in the usage chart")
    assert bar.get_attribute("data-value") == "1"
    window = {"start": f"{day}T00:00:00Z", "end": midnight_after(day)}
    by_day = admin(gateway, "GET", "/admin/usage", params={**window, "group_by": "day"})
    by_key = admin(gateway, "GET", "/admin/usage", params={**window, "group_by": "key"})
    assert {g["group"]: g["requests"] for g in by_key["groups"]}[key["id"]] == 1
    day_bar = page.locator(f"#usage-day-chart .bar[data-day='{day}']")
    assert day_bar.get_attribute("data-value") == str(by_day["groups"][0]["requests"])
    assert page.inner_text("dd[data-total=requests]") == f"{by_day['totals']['requests']:,}"
    assert page.url.endswith(f"start={day}&end={day}&group_by=key&metric=requests")
    t.shoot("usage")

    # Limits and allowlist.
    page = t.open("/ui/keys")
    page.get_by_role("button", name="Edit console-e2e").click()
    dialog = page.locator("dialog")
    dialog.get_by_label("Requests per minute").fill("60")
    dialog.get_by_label("Tokens per minute").fill("50000")
    dialog.get_by_label("Budget (USD)").fill("5")
    dialog.get_by_label("Budget period").select_option("monthly")
    dialog.get_by_label("Every model (no allowlist)").uncheck()
    dialog.get_by_label("mock-gpt").check()
    t.shoot("key-form")
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="detached")
    expect(page.get_by_role("button", name="Edit console-e2e")).to_be_focused()  # back there
    row = page.locator(f"tr[data-key-id='{key['id']}']")
    assert "RPM 60" in row.inner_text() and "of $5.00 (monthly)" in row.inner_text()
    edited = admin(gateway, "GET", f"/admin/keys/{key['id']}")
    assert (edited["rpm_limit"], edited["tpm_limit"], edited["allowed_models"],
            edited["max_budget"]) == (60, 50000, ["mock-gpt"], 5.0)
    t.shoot("keys")

    # Rotate: a new secret, shown once; the old one stops working.
    page.get_by_role("button", name="Rotate console-e2e").click()
    page.locator("dialog").get_by_role("button", name="Rotate").click()
    rotated = page.locator("#key-secret").inner_text()
    assert rotated.startswith("sk-nr-") and rotated != secret
    page.click("#secret-done")
    scenarios.until_every_worker(gateway, 2, secret, 401, timeout=WAIT_S)
    assert chat_status(gateway, rotated) == 200

    # Revoke: the key gets 401 from every worker.
    page.get_by_role("button", name="Revoke console-e2e").click()
    page.locator("dialog").get_by_role("button", name="Revoke").click()
    page.locator(f"tr[data-key-id='{key['id']}'] .status-revoked").wait_for()
    scenarios.until_every_worker(gateway, 2, rotated, 401, timeout=WAIT_S)
    assert requests.get(f"{gateway.url}/v1/models", timeout=10, headers={
        "Authorization": f"Bearer {rotated}"}).json()["error"]["code"] == "api_key_revoked"


def test_routing_shows_every_deployment_and_refreshes(tab: Callable[..., Tab]) -> None:
    t = tab()
    page = t.open("/ui/routing")
    row = page.locator("tr[data-deployment='mock-gpt#0']")
    row.wait_for()
    assert row.get_attribute("data-state") == "closed"
    assert "worker" in page.inner_text("#routing-status")
    view = page.locator("#view")
    first = int(view.get_attribute("data-refreshes") or 0)
    expect(view).to_have_attribute("data-refreshes", str(first + 1), timeout=WAIT_S * 1000)
    t.shoot("routing")
    pause = page.get_by_role("button", name="Pause live updates")
    pause.click()
    expect(pause).to_have_attribute("aria-pressed", "true")
    paused_at = view.get_attribute("data-refreshes") or ""
    pause.click()  # resuming refreshes at once
    expect(pause).to_have_attribute("aria-pressed", "false")
    expect(view).not_to_have_attribute("data-refreshes", paused_at, timeout=1500)


def test_audit_log_filters(tab: Callable[..., Tab], gateway: Proc) -> None:
    doomed = admin(gateway, "POST", "/admin/keys", json={"name": "audited"})
    admin(gateway, "POST", f"/admin/keys/{doomed['id']}/revoke")
    t = tab()
    page = t.open("/ui/audit?entity=api_key&action=revoke")
    page.locator("tr[data-action]").first.wait_for()
    expected = admin(gateway, "GET", "/admin/audit",
                     params={"entity": "api_key", "action": "revoke", "limit": 50})["data"]
    actions = page.locator("tr[data-action]").evaluate_all(
        "rows => rows.map(r => r.dataset.action)")
    assert actions == ["revoke"] * len(expected) and expected
    assert doomed["id"] in page.inner_text("#view")
    t.shoot("audit")
    # The form: only this key's entries, whatever the action; the filter goes to the URL.
    page.get_by_label("Action").select_option("")
    page.get_by_label("Entity id").fill(doomed["id"])
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(f"**/ui/audit?entity=api_key&entity_id={doomed['id']}")
    page.locator("tr[data-action='create']").wait_for()
    actions = page.locator("tr[data-action]").evaluate_all(
        "rows => rows.map(r => r.dataset.action)")
    assert actions == ["create", "revoke"]


def test_a_session_works_on_every_worker_and_changes_need_its_token(gateway: Proc) -> None:
    signed_in = requests.post(f"{gateway.url}/ui/session", headers=AUTH, timeout=10)
    cookie = {"Cookie": f"neuroroute_session={signed_in.cookies['neuroroute_session']}",
              "Connection": "close"}

    def keys() -> requests.Response:
        return requests.get(f"{gateway.url}/admin/keys", headers=cookie, timeout=10)

    workers: set[str] = set()
    with ThreadPoolExecutor(8) as pool:
        for _ in range(30):  # concurrent requests: the workers race to accept them
            answers = list(pool.map(lambda _: keys(), range(8)))
            assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
            workers |= {a.headers["X-NeuroRoute-Worker"] for a in answers}
            if len(workers) == 2:
                break
    assert len(workers) == 2  # both workers took the same cookie
    refused = requests.post(f"{gateway.url}/admin/teams", json={"name": "t"}, timeout=10,
                            headers=cookie)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "csrf_token_invalid"
    created = requests.post(f"{gateway.url}/admin/teams", json={"name": "t"}, timeout=10,
                            headers={**cookie, "X-CSRF-Token": signed_in.json()["csrf_token"]})
    assert created.status_code == 201

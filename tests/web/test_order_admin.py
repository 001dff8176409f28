"""The order page and the operations dashboard in headless Chromium: an admin forces an order
transition from /admin and the buyer's order page (another window, another session) shows it
live; rider positions on `order:{id}` move the marker on the offline map with the ETA; a rider who
posts a fix shows on the dashboard's riders-online map; axe-core finds no serious violation on
either page."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Account, Register
from tests.support.servers import ServerProcess
from tests.web.conftest import (
    axe_serious,
    csp_violations,
    dump,
    screenshot,
    sign_in,
    text_of,
    topped_up,
    wait_for,
)

pytestmark = pytest.mark.slow


async def paid_order(client: httpx.AsyncClient, seller: Account, buyer: Account) -> str:
    r = await client.post("/v1/products", headers=seller.headers, json={
        "title": "Copper tray", "variants": [{"sku": f"tray-{uuid.uuid4().hex[:8]}",
                                              "price": 2500, "stock": 4}]})
    assert r.status_code == 201, r.text
    variant = r.json()["variants"][0]["id"]
    await topped_up(client, buyer)
    r = await client.post("/v1/cart/items", json={"variant_id": variant, "quantity": 1},
                          headers=buyer.headers)
    assert r.status_code in (200, 201), r.text
    r = await client.post("/v1/checkout", headers={**buyer.headers,
                                                   "Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code == 201, r.text
    order = str(r.json()["orders"][0]["id"])
    r = await client.post(f"/v1/orders/{order}/pay", headers=buyer.headers)
    assert r.status_code == 200, r.text
    return order


async def test_admin_forces_a_transition_and_the_buyers_order_page_follows_live(
    browser: Any, web_server: ServerProcess, client: httpx.AsyncClient, register: Register,
    axe_source: str,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    seller = await register("seller")
    buyer = await register("buyer")
    admin = await register("admin")
    order = await paid_order(client, seller, buyer)
    base = web_server.url

    # The buyer's window: the order page with its history.
    sign_in(browser, base, buyer, f"/orders/{order}")
    wait_for(lambda: text_of(browser, "order-state") == "Paid", 10, "the order page")
    wait_for(lambda: text_of(browser, "conn-status") == "Live updates on", 10, "the hub")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline li")) == 2
    buyer_window = browser.current_window_handle
    assert axe_serious(browser, axe_source) == []

    # The admin's window (its own sessionStorage): the dashboard, the order found by id.
    browser.switch_to.new_window("window")
    sign_in(browser, base, admin, "/admin")
    wait_for(lambda: browser.find_elements(By.ID, "order-id-filter"), 10, "the dashboard")
    browser.find_element(By.ID, "order-id-filter").send_keys(order)
    browser.find_element(By.CSS_SELECTOR, "#order-search button").click()
    row = f"details[data-order='{order}']"
    wait_for(lambda: order in (browser.find_element(By.ID, "order-results")
                               .get_attribute("data-query") or ""), 10, "the search's answer")
    browser.find_element(By.CSS_SELECTOR, f"{row} summary").click()
    Select(browser.find_element(By.CSS_SELECTOR, f"{row} .force-to")).select_by_value("packed")
    browser.find_element(By.CSS_SELECTOR, f"{row} .force-reason").send_keys("seller asked by phone")
    browser.find_element(By.CSS_SELECTOR, f"{row} .force").click()
    wait_for(lambda: "packed" in text_of(browser, "order-results").lower(), 10,
             "the dashboard showing the new state")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#kpi-connections"), 10, "the figures")
    assert int(text_of(browser, "kpi-connections")) >= 1
    screenshot(browser, "admin")
    serious = axe_serious(browser, axe_source)
    assert serious == [], dump(serious)
    assert csp_violations(browser) == []

    # The buyer's page followed without a reload.
    browser.switch_to.window(buyer_window)
    browser.execute_script("window.stillTheSamePage = true;")
    wait_for(lambda: text_of(browser, "order-state") == "Packed", 5, "the live state")
    assert "seller asked by phone" in text_of(browser, "timeline")

    # Out for delivery; the rider's positions (latest-value publications on order:{id}, as the
    # tracking service sends them) move the marker on the map, with the ETA.
    r = await client.post(f"/v1/admin/orders/{order}/transition", headers=admin.headers,
                          json={"to": "out_for_delivery", "reason": "rider picked it up"})
    assert r.status_code == 200, r.text
    wait_for(lambda: text_of(browser, "order-state") == "Out for delivery", 5, "delivery state")
    for n, (lat, lon, eta) in enumerate([(25.2048, 55.2708, 900), (25.2100, 55.2790, 420)]):
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.post(
                f"{base}/v1/admin/channels/order:{order}/publications", headers=admin.headers,
                json={"key": "rider.position", "data": {
                    "type": "rider.position", "lat": lat, "lon": lon,
                    "ts": 1_800_000_000_000 + n, "eta_s": eta}})
        assert r.status_code in (201, 202), r.text
        wait_for(lambda n=n: browser.execute_script(
            "return document.getElementById('map').dataset.points") == str(n + 1), 5,
            f"position {n + 1} on the map")
    assert text_of(browser, "eta") == "Arriving in about 7 min"
    first = browser.execute_script("return document.getElementById('rider').getAttribute('cx')")
    assert first not in ("-20", None)
    assert browser.execute_script("return window.stillTheSamePage") is True
    screenshot(browser, "order-out-for-delivery")
    serious = axe_serious(browser, axe_source)
    assert serious == [], dump(serious)
    assert csp_violations(browser) == []


async def test_admin_page_refuses_a_buyer(
    browser: Any, web_server: ServerProcess, register: Register,
) -> None:
    buyer = await register("buyer")
    sign_in(browser, web_server.url, buyer, "/")
    browser.get(web_server.url + "/admin")
    wait_for(lambda: text_of(browser, "admins-only"), 10, "the refusal")
    # And the API behind it refuses too, whatever the page does.
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(f"{web_server.url}/v1/admin/orders", headers=buyer.headers)
    assert r.status_code == 403


async def test_admin_refunds_part_of_an_order_and_adjusts_a_wallet(
    browser: Any, web_server: ServerProcess, client: httpx.AsyncClient, register: Register,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    seller = await register("seller")
    buyer = await register("buyer")
    admin = await register("admin")
    order = await paid_order(client, seller, buyer)
    before = (await client.get("/v1/wallet", headers=buyer.headers)).json()["available"]
    sign_in(browser, web_server.url, admin, "/admin")
    wait_for(lambda: text_of(browser, "dead-letters") == "None.", 10, "the dead letters")
    Select(browser.find_element(By.ID, "order-state-filter")).select_by_value("paid")
    browser.find_element(By.CSS_SELECTOR, "#order-search button").click()
    row = f"details[data-order='{order}']"
    wait_for(lambda: "state=paid" in (browser.find_element(By.ID, "order-results")
                                      .get_attribute("data-query") or ""), 10, "the search")
    browser.find_element(By.CSS_SELECTOR, f"{row} summary").click()
    browser.find_element(By.CSS_SELECTOR, f"{row} .force-reason").send_keys("scratched")
    browser.find_element(By.CSS_SELECTOR, f"{row} .refund-amount").send_keys("500")
    browser.find_element(By.CSS_SELECTOR, f"{row} .refund").click()
    wait_for(lambda: "refund" in text_of(browser, "order-results"), 10, "the refund in history")

    browser.find_element(By.ID, "adjust-user").send_keys(buyer.id)
    browser.find_element(By.ID, "adjust-amount").send_keys("1000")
    browser.find_element(By.ID, "adjust-reason").send_keys("goodwill")
    browser.find_element(By.CSS_SELECTOR, "#adjust-form button").click()
    wait_for(lambda: text_of(browser, "adjust-result") == "Done.", 10, "the adjustment")
    after = (await client.get("/v1/wallet", headers=buyer.headers)).json()["available"]
    assert after == before + 500 + 1000
    events = (await client.get(f"/v1/orders/{order}", headers=buyer.headers)).json()["events"]
    assert [e["reason"] for e in events if e["kind"] == "refund"] == ["scratched"]


async def test_admin_sees_a_rider_who_posted_a_fix_on_the_riders_map(
    browser: Any, web_server: ServerProcess, register: Register, axe_source: str,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    admin = await register("admin")
    rider = await register("rider", name="Rania Rider")
    base = web_server.url
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        r = await http.put("/v1/riders/me/availability", headers=rider.headers,
                           json={"status": "available"})
        assert r.status_code == 200, r.text
        r = await http.post("/v1/tracking/devices", headers=rider.headers, json={})
        assert r.status_code == 201, r.text
        r = await http.get("/v1/tracking/osmand", params={
            "id": r.json()["key"], "lat": "25.204800", "lon": "55.270800", "speed": "10"})
        assert r.status_code == 200, r.text

    sign_in(browser, base, admin, "/admin")
    dot = f"#riders-map g[data-rider='{rider.id}']"
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, dot), 10, "the rider on the map")
    assert browser.find_element(By.CSS_SELECTOR, f"{dot} text").text == "Rania Rider"
    assert browser.find_element(By.CSS_SELECTOR, f"{dot} circle").get_attribute("cx") not in (
        None, "")
    listed = text_of(browser, "riders-list")
    assert "Rania Rider" in listed and "25.20480, 55.27080" in listed
    assert text_of(browser, "riders-count") == "1 online"  # the test's own Redis prefix

    # Keyboard alone: focus the rider's button, press Enter: the dot is highlighted, focus stays.
    pick = f"#riders-list li[data-rider='{rider.id}'] button"
    browser.execute_script("document.querySelector(arguments[0]).focus()", pick)
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for(lambda: "selected" in (browser.find_element(By.CSS_SELECTOR, dot)
                                    .get_attribute("class") or ""), 5, "the rider highlighted")
    assert browser.find_element(By.CSS_SELECTOR, pick).get_attribute("aria-pressed") == "true"
    assert browser.execute_script(
        "return document.activeElement.closest('li')?.dataset.rider") == rider.id
    screenshot(browser, "admin-riders-online")
    serious = axe_serious(browser, axe_source)
    assert serious == [], dump(serious)
    assert csp_violations(browser) == []

    # In Arabic: the panel's texts, the same map (left-to-right: east stays on the right).
    browser.get(f"{base}/admin?lang=ar")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, dot), 10, "the rider on the map (ar)")
    assert text_of(browser, "riders-h") == "المندوبون المتصلون"
    assert browser.execute_script("return document.documentElement.dir") == "rtl"
    assert browser.execute_script(
        "return getComputedStyle(document.getElementById('riders-map')).direction") == "ltr"

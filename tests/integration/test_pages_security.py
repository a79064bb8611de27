"""The pages and their scripts carry a Content-Security-Policy and the usual security headers,
and still work under them (the browser tests drive them); files the server creates in its data
directory are readable by their owner only."""

from __future__ import annotations

import stat

import httpx

from tests.support.live_server import LiveServer


def test_pages_and_their_files_carry_security_headers(server: LiveServer) -> None:
    pages = ("/", "/desktop", "/audit", "/audit/explanation", "/rulesets")
    pages += ("/schema", "/schema/swagger")
    files = ("/static/desktop.js", "/static/explanation.js", "/static/frontline.css")
    files += ("/static/home.js", "/static/api.js", "/vendor/swagger-ui/swagger-ui-bundle.js")
    for path in (*pages, *files):
        response = httpx.get(server.url + path)
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["x-frame-options"] == "DENY", path
        assert response.headers["referrer-policy"] == "no-referrer", path


def test_the_data_directory_is_readable_by_its_owner_only(server: LiveServer) -> None:
    httpx.get(server.url + "/readyz")
    found = [p for p in server.data_dir.rglob("*") if p.is_file() and p.name != "server.log"]
    assert any(p.name.endswith(".db") for p in found)  # the query index is among them
    open_to_others = [
        str(p.relative_to(server.data_dir))
        for p in found
        if p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    ]
    assert open_to_others == []
